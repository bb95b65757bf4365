"""`pip install .` of the repository's files into a fresh venv, as a user would from a clean clone.

pip runs setup.py in a copy of the tree (no build/ in it), which builds the patched FFmpeg from
source with scripts/build_ffmpeg.sh and then the extension; the installed `pycodec extract` must
then write the same HDF5 file as the in-tree build (the oracle) for an H.264 and an HEVC sample.
The one shortcut: the FFmpeg tarball `make` already downloaded (build/dl) is handed to the build
with PYCODEC_FFMPEG_TARBALL (its sha256 is still checked), so only the download is skipped.
FFmpeg and the extension are compiled: about 3 minutes of CPU (2-3 minutes on 2 idle cores, 5 on
busy ones); deselect it with `-k "not test_installed"` while iterating on something else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pycodec.samples import make_talking_sample

ROOT = Path(__file__).resolve().parent.parent
TARBALL = ROOT / "build" / "dl" / "ffmpeg_5.1.9.orig.tar.xz"
PIP_TIMEOUT_S = 1800


def _copy_tree(dest: Path) -> None:
    """Copy what a clone of this checkout holds: tracked files plus new ones git does not ignore."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        msg = f"{ROOT} is not a git checkout (or git is missing); cannot make a clean copy of it"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout
    for rel in sorted({r for r in listing.decode().split("\0") if r}):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without what would point pip or Python at the in-tree build."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "FFMPEG_PREFIX", "PIP_NO_BUILD_ISOLATION", "PYTHONHOME")}
    env.update(extra)
    return env


def _h5_contents(path: Path) -> dict[str, object]:
    def attrs(obj) -> dict[str, object]:
        return {k: obj.attrs[k] for k in sorted(obj.attrs)}

    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        out["/"] = attrs(f)

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.str, obj.shape, obj[()], attrs(obj))
            else:
                out[name] = attrs(obj)

        f.visititems(visit)
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return a == b


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv where `pip install CLEAN_COPY` has run; its bin/ directory."""
    tmp = tmp_path_factory.mktemp("install")
    src, venv = tmp / "src", tmp / "venv"
    _copy_tree(src)
    assert not (src / "build").exists()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_clean_env())
    extra = {"PYCODEC_FFMPEG_TARBALL": str(TARBALL)} if TARBALL.is_file() else {}
    t0 = time.monotonic()
    p = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", str(src)],
        cwd=tmp, env=_clean_env(**extra), capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False,
    )
    took = time.monotonic() - t0
    if p.returncode != 0:
        pytest.fail(f"`pip install {src}` failed (exit {p.returncode}, {took:.0f} s):\n"
                    f"{p.stdout[-3000:]}\n{p.stderr[-5000:]}", pytrace=False)
    print(f"pip install: {took:.0f} s")
    # pip builds in the copy: FFmpeg was really compiled there, from the patched source.
    assert (src / "build" / "ffmpeg" / ".built").is_file()
    assert (src / "build" / "ffmpeg-src" / ".patched").is_file()
    assert "libavcodec/h264_export.o" in (src / "build" / "ffmpeg-obj" / "build.log").read_text()
    return venv / "bin"


def test_installed_module_is_the_venvs(installed, tmp_path):
    p = subprocess.run(
        [str(installed / "python"), "-c",
         "import pycodec, pycodec._core as c; print(c.__file__); print(c.ffmpeg_version())"],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, check=True,
    )
    core_file, version = p.stdout.split()
    assert Path(core_file).is_relative_to(installed.parent), core_file
    assert version.startswith("5.1.9")
    # FFmpeg's licence travels with the module that links it, and our notice with the distribution
    src = installed.parent.parent / "src" / "build" / "ffmpeg-src"
    for name in ("COPYING.LGPLv2.1", "LICENSE.md"):
        shipped = Path(core_file).parent / "_licenses" / f"FFmpeg-{name}"
        assert shipped.read_bytes() == (src / name).read_bytes(), name
    notices = list(installed.parent.glob("lib/python*/site-packages/pycodec-*.dist-info/licenses/NOTICE.md"))
    assert len(notices) == 1 and "FFmpeg 5.1.9" in notices[0].read_text()


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_installed_extract_matches_in_tree(installed, tmp_path, codec):
    opts = {"x265-params": "bframes=2:keyint=6:log-level=error"} if codec == "libx265" else None
    make_talking_sample(tmp_path / "talk.mp4", 96, 64, 10, codec=codec, codec_options=opts, seed=7)
    got = subprocess.run(
        [str(installed / "pycodec"), "extract", "talk.mp4", "installed.h5", "--quiet"],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, check=False,
    )
    assert got.returncode == 0, got.stderr
    oracle = subprocess.run(
        [sys.executable, "-m", "pycodec", "extract", "talk.mp4", "oracle.h5", "--quiet"],
        cwd=tmp_path, env=_clean_env(PYTHONPATH=str(ROOT)), capture_output=True, text=True, check=False,
    )
    assert oracle.returncode == 0, oracle.stderr
    a, b = _h5_contents(tmp_path / "installed.h5"), _h5_contents(tmp_path / "oracle.h5")
    assert sorted(a) == sorted(b)
    assert len([k for k, v in a.items() if isinstance(v, tuple)]) > 10
    differ = [k for k in a if not _same(a[k], b[k])]
    assert not differ, f"datasets or attributes that differ: {differ[:10]}"
