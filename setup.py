"""Builds pycodec._core (csrc/*.cpp) against the patched static FFmpeg.

FFMPEG_PREFIX points at the FFmpeg install (default: build/ffmpeg next to this file,
made by `make ffmpeg`).  FFmpeg is linked statically with its symbols hidden, so the
module can share a process with PyAV and its own FFmpeg.
"""

from __future__ import annotations

import os
import sys
from glob import glob
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ROOT = Path(__file__).resolve().parent
FFMPEG_PREFIX = Path(os.environ.get("FFMPEG_PREFIX") or ROOT / "build" / "ffmpeg").resolve()
FFMPEG_LIBS = [FFMPEG_PREFIX / "lib" / f"lib{name}.a" for name in ("avformat", "avcodec", "avutil")]


class BuildExt(build_ext):
    """build_ext that explains a missing FFmpeg instead of failing at link time."""

    def run(self) -> None:
        missing = [str(p) for p in FFMPEG_LIBS if not p.is_file()]
        if missing:
            sys.exit(
                f"error: the patched FFmpeg is not built ({missing[0]} is missing); "
                "run `make ffmpeg` or set FFMPEG_PREFIX"
            )
        super().run()


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
