"""Builds pycodec._core (csrc/*.cpp) against the patched static FFmpeg.

Where FFmpeg comes from:
* FFMPEG_PREFIX set: that install is used as it is (the Makefile sets it to build/ffmpeg).
* otherwise build_ext runs scripts/build_ffmpeg.sh on build/ next to this file: the first time
  it downloads FFmpeg's source from Debian, checks it, applies third_party/ffmpeg-patches/ and
  builds it (a few minutes); afterwards, as long as the patches and flags are the same, it does
  nothing.  This is what `pip install .`, `pip install git+URL` and `pip wheel .` use.
  PYCODEC_BUILD_JOBS sets the number of compile jobs (FFmpeg: default all CPUs; the extension:
  default 2), PYCODEC_FFMPEG_TARBALL a local copy of FFmpeg's tarball (see the script).

FFmpeg is linked statically with its symbols hidden, so the module can share a process with PyAV
and its own FFmpeg.  FFmpeg's licence (LGPL 2.1 or later) travels with the build: its own
COPYING.LGPLv2.1 and LICENSE.md, copied from the source tree that was compiled, go into
pycodec/_licenses/ (NOTICE.md says what is linked and where its source is).
"""

from __future__ import annotations

import os
import subprocess
import sys
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ROOT = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"
PREFIX_FROM_ENV = bool(os.environ.get("FFMPEG_PREFIX"))
FFMPEG_PREFIX = Path(os.environ.get("FFMPEG_PREFIX") or BUILD_DIR / "ffmpeg").resolve()
FFMPEG_LIBS = [FFMPEG_PREFIX / "lib" / f"lib{name}.a" for name in ("avformat", "avcodec", "avutil")]
# FFmpeg's own licence files, shipped next to the module that links it
FFMPEG_LICENSES = ("COPYING.LGPLv2.1", "LICENSE.md")


def build_ffmpeg() -> None:
    """Build (or find up to date) the patched FFmpeg in build/ with the project's one recipe."""
    script = ROOT / "scripts" / "build_ffmpeg.sh"
    jobs = os.environ.get("PYCODEC_BUILD_JOBS") or str(os.cpu_count() or 2)
    try:
        rc = subprocess.run(["bash", str(script), "-j", jobs, str(BUILD_DIR)], check=False).returncode
        why = f"exit status {rc}, the reason is above"
    except OSError as exc:
        rc, why = 1, str(exc)
    if rc != 0:
        sys.exit(
            f"error: scripts/build_ffmpeg.sh could not build the patched FFmpeg ({why}); it needs bash, "
            "make, a C compiler and Debian 12 apt sources for FFmpeg's source package. Or build FFmpeg "
            "with `make ffmpeg` in a clone and set FFMPEG_PREFIX to that clone's build/ffmpeg"
        )


class BuildExt(build_ext):
    """build_ext that first builds the patched FFmpeg (unless FFMPEG_PREFIX says where it is)."""

    def run(self) -> None:
        if not PREFIX_FROM_ENV:
            build_ffmpeg()
        missing = [str(p) for p in FFMPEG_LIBS if not p.is_file()]
        if missing:
            sys.exit(
                f"error: the patched FFmpeg is not built ({missing[0]} is missing); "
                "run `make ffmpeg`, or unset FFMPEG_PREFIX to have setup.py build it"
            )
        super().run()
        self.copy_licenses()

    def copy_licenses(self) -> None:
        """FFmpeg's licence files from the compiled source tree into pycodec/_licenses/."""
        src = Path(os.environ.get("FFMPEG_SOURCE") or FFMPEG_PREFIX.parent / "ffmpeg-src")
        missing = [n for n in FFMPEG_LICENSES if not (src / n).is_file()]
        if missing:
            sys.exit(f"error: {src / missing[0]} is missing: FFmpeg's licence must ship with the module; "
                     "set FFMPEG_SOURCE to the FFmpeg source tree that was built")
        dest = (ROOT if self.inplace else Path(self.build_lib)) / "pycodec" / "_licenses"
        dest.mkdir(parents=True, exist_ok=True)
        for name in FFMPEG_LICENSES:
            self.copy_file(str(src / name), str(dest / f"FFmpeg-{name}"))


sources = sorted(os.path.relpath(p, ROOT) for p in glob(str(ROOT / "csrc" / "*.cpp")))
headers = sorted(os.path.relpath(p, ROOT) for p in glob(str(ROOT / "csrc" / "*.h")))

core = Pybind11Extension(
    "pycodec._core",
    sources,
    include_dirs=[str(FFMPEG_PREFIX / "include"), "csrc"],
    extra_objects=[str(p) for p in FFMPEG_LIBS],
    libraries=["m", "atomic"],
    extra_compile_args=["-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
    extra_link_args=["-pthread", "-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic", "-Wl,--as-needed"],
    depends=headers + [str(p) for p in FFMPEG_LIBS],
    cxx_std=17,
)

# At most two compile jobs (PYCODEC_BUILD_JOBS overrides).
ParallelCompile("PYCODEC_BUILD_JOBS", default=2).install()

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
