"""Hostile use of the command line (issue 14): outputs that are not regular files, output = input,
full disks at close, signals, Ctrl-C swallowed by h5py, Ctrl-C while starting, damaged .h5 files.

Every test here failed on the code before the fix it guards.
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import one_error_line, run

import pycodec
from pycodec import cli, store
from pycodec.samples import make_talking_sample

ROOT = Path(pycodec.__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


# Run first in every child: SIGINT and SIGHUP as a terminal delivers them, even when this test run
# inherited them ignored (a background job of a non-interactive shell, nohup).
DEFAULT_SIGNALS = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "signal.signal(signal.SIGHUP, signal.SIG_DFL)\n"
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """A small H.264 clip (64x48, 12 frames)."""
    return Path(make_talking_sample(tmp_path_factory.mktemp("hard") / "s.mp4", 64, 48, 12, seed=11))


@pytest.fixture(scope="module")
def long_sample(tmp_path_factory) -> Path:
    """A clip long enough to be signalled while it is being extracted (about 3 s of work)."""
    return Path(make_talking_sample(tmp_path_factory.mktemp("hard") / "long.mp4", 320, 240, 240, seed=12,
                                    codec_options={"preset": "ultrafast"}))


def leftovers(folder: Path) -> list[str]:
    """Temporary files the writers leave when something went wrong."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".part", ".png")) and p.name[0] == ".")


# ---------------------------------------------------------------------- D1: only regular files are replaced


@pytest.mark.parametrize("overwrite", [False, True])
def test_fifo_output_is_never_replaced(capsys, tmp_path, sample, overwrite):
    fifo = tmp_path / "out.h5"
    os.mkfifo(fifo)
    rc, _, err = run(capsys, "extract", sample, fifo, *(["--overwrite"] if overwrite else []), "-q")
    assert rc == 2
    one_error_line(err, str(fifo), "FIFO" if overwrite else "already exists")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]


def test_link_to_a_device_is_never_replaced(capsys, tmp_path, sample):
    link = tmp_path / "out.h5"
    link.symlink_to("/dev/null")
    rc, _, err = run(capsys, "extract", sample, link, "--overwrite", "-q")
    assert rc == 2
    one_error_line(err, "/dev/null", "device", "another output path")
    assert os.readlink(link) == "/dev/null" and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(os.listdir(tmp_path)) == ["out.h5"]


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_device_node_is_never_replaced(capsys, tmp_path, sample):
    dev = tmp_path / "null.h5"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a second /dev/null, inside tmp_path
    rc, _, err = run(capsys, "extract", sample, dev, "--overwrite", "-q")
    assert rc == 2
    one_error_line(err, "is a device")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_link_to_a_regular_file_writes_the_target(capsys, tmp_path, sample):
    target = tmp_path / "real.h5"
    target.write_bytes(b"old")
    link = tmp_path / "link.h5"
    link.symlink_to(target.name)
    rc, _, err = run(capsys, "extract", sample, link, "--fields", "frame", "--overwrite", "-q")
    assert rc == 0, err
    assert link.is_symlink() and os.readlink(link) == target.name
    with store.open_h5(target) as f:
        assert len(f) == 12
    assert sorted(os.listdir(tmp_path)) == ["link.h5", "real.h5"]


def test_show_never_replaces_a_fifo(capsys, tmp_path, sample):
    h5 = tmp_path / "s.h5"
    assert run(capsys, "extract", sample, h5, "--fields", "frame,block", "-q")[0] == 0
    fifo = tmp_path / "fig.png"
    os.mkfifo(fifo)
    rc, _, err = run(capsys, "show", h5, "--frame", "1", "-o", fifo)
    assert rc == 2
    one_error_line(err, "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and leftovers(tmp_path) == []


def test_output_naming_a_directory_is_refused(capsys, tmp_path, sample):
    rc, _, err = run(capsys, "extract", sample, f"{tmp_path / 'newdir'}/", "-q")
    assert rc == 2
    one_error_line(err, "newdir/", "file name")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- D2: the input is never written over


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "relative"])
def test_output_equal_to_input_is_refused(capsys, tmp_path, sample, how, monkeypatch):
    src = tmp_path / "in.mp4"
    src.write_bytes(sample.read_bytes())
    out = {"same": src, "symlink": tmp_path / "l.h5", "hardlink": tmp_path / "h.h5", "relative": "./in.mp4"}[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "extract", src, out, "--overwrite", "-q")
    assert rc == 2
    one_error_line(err, "is the input file", "another output path")
    assert src.read_bytes() == sample.read_bytes()


# ---------------------------------------------------------------------- D3: a full disk while closing


def test_hdf5_flush_failure_at_close_is_one_line(capsys, tmp_path, sample, monkeypatch):
    """h5py raises RuntimeError (not OSError) when HDF5 cannot flush its caches while closing."""
    out = tmp_path / "o.h5"
    out.write_bytes(b"old")
    real_close = h5py.File.close

    def close(self):
        if self.mode == "r+" and self.id.valid and self.filename.endswith(".part"):
            real_close(self)
            raise RuntimeError(
                "Disable slist on flush dest failure failed (file write failed: errno = 28, "
                "error message = 'No space left on device')"
            )
        real_close(self)

    monkeypatch.setattr(h5py.File, "close", close)
    rc, _, err = run(capsys, "extract", sample, out, "--fields", "block", "--overwrite", "-q")
    assert rc == 2
    one_error_line(err, str(out), "no space left on device", "free some space")
    assert os.listdir(tmp_path) == ["o.h5"] and out.read_bytes() == b"old"


def _mount_tmpfs(path: Path, kib: int) -> bool:
    path.mkdir(exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)],
                       capture_output=True, check=False)
    return p.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs (a real full disk) needs root")
@pytest.mark.parametrize("compression", ["lzf", "gzip"])
def test_real_full_disk_at_every_size(tmp_path, sample, compression):
    """A disk that fills up anywhere (while writing, while closing): exit 2, one line, nothing left."""
    ref = tmp_path / "ref.h5"
    assert cli.main(["extract", str(sample), str(ref), "--fields", "block", "-q",
                     "--compression", compression]) == 0
    size_kib = ref.stat().st_size // 1024
    code = textwrap.dedent(f"""
        import contextlib, io, json, os, subprocess, sys
        from pycodec import cli
        mnt, out = {str(tmp_path / 'mnt')!r}, []
        os.makedirs(mnt, exist_ok=True)
        for kib in range(4, {size_kib} + 40, 4):
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={{kib}}k", "tmpfs", mnt], check=True)
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err):
                    rc = cli.main(["extract", {str(sample)!r}, mnt + "/o.h5", "--fields", "block", "-q",
                                   "--compression", {compression!r}])
                out.append([kib, rc, err.getvalue(), sorted(os.listdir(mnt))])
            finally:
                subprocess.run(["umount", mnt], check=True)
        print(json.dumps(out))
    """)
    if not _mount_tmpfs(tmp_path / "probe", 64):
        pytest.skip("this machine does not allow mounting a tmpfs")
    subprocess.run(["umount", str(tmp_path / "probe")], check=True)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300,
                       check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(p.stdout)
    assert {r[1] for r in rows} == {0, 2}, rows  # the scan crosses from "full" to "fits"
    for kib, rc, err, files in rows:
        if rc == 0:
            assert files == ["o.h5"], (kib, files)
        else:
            assert rc == 2 and files == [], (kib, rc, files)
            one_error_line(err, "no space left on device")


# ---------------------------------------------------------------------- D4, D10: signals


def _extract_and_signal(src: Path, out: Path, sig: int, *options: str) -> subprocess.CompletedProcess:
    """Run `pycodec extract` in a process of its own and send it ``sig`` once it writes frames."""
    argv = ["pycodec", "extract", str(src), str(out), "-q", *options]
    code = DEFAULT_SIGNALS + f"import runpy, sys; sys.argv = {argv!r}; runpy.run_module('pycodec', run_name='__main__')"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and p.poll() is None:
        parts = [q for q in out.parent.iterdir() if q.name.endswith(".part")]
        if parts and parts[0].stat().st_size > 200_000:  # frames are being written
            break
        time.sleep(0.01)
    assert p.poll() is None, "the extraction ended before it could be signalled; use a longer clip"
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


@pytest.mark.parametrize(("sig", "word"), [(signal.SIGTERM, "terminated"), (signal.SIGHUP, "hung up"),
                                           (signal.SIGINT, "interrupted")])
def test_signal_removes_the_partial_file(tmp_path, long_sample, sig, word):
    out = tmp_path / "o.h5"
    p = _extract_and_signal(long_sample, out, sig)
    assert p.returncode == 128 + sig, p.stderr
    one_error_line(p.stderr, word, "nothing was written")
    assert os.listdir(tmp_path) == []


def test_ctrl_c_during_gzip_in_the_main_thread(tmp_path, long_sample):
    """h5py runs weakref callbacks while writing gzip chunks; a KeyboardInterrupt raised inside one is
    dropped by Python. The command must still stop, exit 130 and leave nothing."""
    out = tmp_path / "o.h5"
    p = _extract_and_signal(long_sample, out, signal.SIGINT, "--compression", "gzip",
                            "--decode-ahead", "0", "--writer-thread", "off")
    assert p.returncode == 130, p.stderr
    one_error_line(p.stderr, "interrupted")
    assert os.listdir(tmp_path) == []


class _SwallowingReader:
    """A reader whose second frame arrives while an interrupt is dropped (as in a weakref callback)."""

    def __init__(self, frames):
        self.frames, self.info, self.fields = frames, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        for i, f in enumerate(self.frames):
            if i == 1:
                try:
                    cli._signals._handle(signal.SIGINT, None)
                except KeyboardInterrupt:
                    pass  # what Python does with an exception raised in a weakref callback
            yield f


def test_swallowed_interrupt_still_stops_the_extraction(capsys, tmp_path, sample, monkeypatch):
    with pycodec.open(sample, fields="frame,block") as r:
        frames = list(r)
    monkeypatch.setattr(pycodec, "open", lambda *a, **k: _SwallowingReader(frames))
    rc, out, err = run(capsys, "extract", sample, tmp_path / "o.h5", "--fields", "frame,block")
    assert rc == 130, err
    one_error_line(err, "interrupted")
    assert os.listdir(tmp_path) == [] and out == ""


# ---------------------------------------------------------------------- D11: Ctrl-C while starting


@pytest.mark.parametrize("module", ["numpy", "h5py", "pycodec._core", "tqdm"])
@pytest.mark.parametrize("entry", ["console", "dash_m"])
def test_ctrl_c_while_importing_is_one_line(tmp_path, sample, module, entry):
    """SIGINT delivered while the command's heavy modules load (deterministically: when ``module`` is
    first imported) ends with one line and exit code 130, never a traceback."""
    run_cmd = ("from pycodec._entry import main; sys.exit(main())" if entry == "console"
               else "import runpy; runpy.run_module('pycodec', run_name='__main__')")
    code = textwrap.dedent(f"""
        import importlib.abc, os, signal, sys
        class Hook(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == {module!r}:
                    sys.meta_path.remove(self)
                    os.kill(os.getpid(), signal.SIGINT)
                return None
        sys.meta_path.insert(0, Hook())
        sys.argv = ["pycodec", "extract", {str(sample)!r}, {str(tmp_path / "o.h5")!r}]
        {run_cmd}
    """)
    p = subprocess.run([sys.executable, "-c", DEFAULT_SIGNALS + code], capture_output=True, text=True, env=ENV,
                       timeout=60, check=False)
    assert p.returncode == 130, p.stderr
    one_error_line(p.stderr, "interrupted")
    assert os.listdir(tmp_path) == []


def test_import_pycodec_is_light():
    """`import pycodec` loads neither numpy nor the extension (they load with the first public name)."""
    code = "import sys, pycodec; print('numpy' in sys.modules, 'pycodec._core' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60,
                       check=True)
    assert p.stdout.split() == ["False", "False"]
    assert callable(pycodec.open) and pycodec.FrameFlag.CORRUPT == 1 and pycodec.store.H5Writer
    with pytest.raises(AttributeError):
        pycodec.no_such_name  # noqa: B018


# ---------------------------------------------------------------------- D9: damaged .h5 files


def test_show_on_damaged_files_is_one_line(capsys, tmp_path, sample):
    """Truncated files and bytes changed in the HDF5 metadata: `show` draws the frame or says in one
    line that the file is damaged (exit 2); never a traceback."""
    good = tmp_path / "good.h5"
    assert run(capsys, "extract", sample, good, "--fields", "frame,block", "-q")[0] == 0
    data = good.read_bytes()
    rng = random.Random(14)
    bad = tmp_path / "bad.h5"
    codes = []
    for i in range(40):
        d = bytearray(data)
        if i % 4 == 0:
            d = d[: rng.randrange(len(d))]
        else:
            for _ in range(6):  # mostly in the first 8 KiB, where h5py puts the object headers
                d[rng.randrange(8192) if rng.random() < 0.8 else rng.randrange(len(d))] = rng.randrange(256)
        bad.write_bytes(bytes(d))
        rc, _, err = run(capsys, "show", bad, "--frame", str(rng.randrange(12)), "-o", tmp_path / "f.png")
        codes.append(rc)
        assert rc in (0, 2), (i, rc, err)
        if rc == 2:
            one_error_line(err, str(bad))
    assert codes.count(2) >= 10 and codes.count(0) >= 2, codes  # the damage really hit both ways
    assert leftovers(tmp_path) == []


def test_open_h5_damaged_metadata(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = store.SCHEMA
        f["frame/pts"] = np.zeros(3, np.int64)  # the other frame/ datasets are missing
    with pytest.raises(store.StoreError, match="damaged"):
        store.open_h5(path)
