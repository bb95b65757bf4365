"""Inputs found by the decoder fuzzers (docs/fuzzing.md), kept in tests/data/fuzz/<codec>/.

`make fuzz-smoke` replays them under ASan + UBSan through the harness; here pycodec itself must
read each of them with every field to the end (or refuse it with a PycodecError) without crashing,
in a child process so that a crash fails this test instead of the whole run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ_DATA = Path(__file__).resolve().parent / "data" / "fuzz"
INPUTS = sorted(p for p in FUZZ_DATA.glob("*/*") if p.is_file())

READ_ALL = """
import sys
import pycodec

try:
    with pycodec.open(sys.argv[1]) as reader:
        n = sum(1 for _ in reader)
    print("frames", n)
except pycodec.PycodecError as exc:
    print("refused", type(exc).__name__, exc)
"""


def test_inputs_present():
    assert {p.parent.name for p in INPUTS} == {"h264", "hevc"}


@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_pycodec_reads_fuzz_input(path, pycodec):
    r = subprocess.run([sys.executable, "-c", READ_ALL, str(path)], check=False, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, f"pycodec crashed on {path.name} (rc {r.returncode}): {r.stderr[-2000:]}"
    assert r.stdout.startswith(("frames", "refused")), r.stdout + r.stderr
    if r.stdout.startswith("refused"):  # a refusal is one clear line
        assert len(r.stdout.strip().splitlines()) == 1, r.stdout
