"""Seed corpus for the decoder fuzzers (docs/fuzzing.md): one raw Annex B stream per test stream
spec of tests/streams.py (H.264) and tests/hevc_streams.py (HEVC), re-encoded small (half the
test size, at most 8 frames) with the same encoder settings, so that every feature the tests
cover (CABAC/CAVLC, B pyramids, weighted prediction, slices, PCM, fields, MBAFF, lossless, 10-bit,
4:2:2, WPP, scaling lists, transform skip, SAO...) starts in the corpus.

usage: python fuzz/make_seeds.py OUT_DIR    (writes OUT_DIR/h264/*.264 and OUT_DIR/hevc/*.hevc)
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hevc_streams as HS
import streams as S

MAX_FRAMES = 8
START = re.compile(b"\x00\x00\x01")


def drop_encoder_sei(data: bytes, sei_type: int, hevc: bool, tag: bytes) -> bytes:
    """The Annex B stream without the SEI NAL units carrying the encoder's settings string
    (x264/x265 write one of about 1-2 kB: bytes the fuzzer would mutate for nothing)."""
    starts = [m.start() for m in START.finditer(data)]
    keep = [data[:starts[0]]] if starts else [data]
    for i, s in enumerate(starts):
        nal = data[s:starts[i + 1] if i + 1 < len(starts) else len(data)]
        nal_type = (nal[3] >> 1) & 0x3F if hevc else nal[3] & 0x1F
        if not (nal_type == sei_type and tag in nal):
            keep.append(nal)
    return b"".join(keep)


def small(spec, min_side=16):
    """The spec at half size (even, at least min_side), at most MAX_FRAMES frames, raw Annex B."""
    w = max(min_side, (spec.width // 2) & ~1)
    h = max(min_side, (spec.height // 2) & ~1)
    return w, h, min(spec.frames, MAX_FRAMES)


def h264_seeds(out: Path, tmp: Path) -> list[Path]:
    paths = []
    for spec in S.SPECS.values():
        dest = out / f"{spec.name}.264"
        if spec.pcm:  # written bit by bit by tests/h264_bitstream.py: already small
            data, _ = S.pcm_expected(spec)
            dest.write_bytes(data)
        else:
            w, h, n = small(spec, 32)
            sm = dataclasses.replace(spec, width=w, height=h, frames=n, container="264")
            S._encode_x264(sm, tmp / dest.name)
            dest.write_bytes(drop_encoder_sei((tmp / dest.name).read_bytes(), 6, False, b"x264"))
        paths.append(dest)
    return paths


def hevc_seeds(out: Path, tmp: Path) -> list[Path]:
    paths = []
    for spec in HS.SPECS.values():
        w, h, n = small(spec, 32)
        sm = dataclasses.replace(spec, width=w, height=h, frames=n, container="hevc")
        HS._encode(sm, tmp / f"{spec.name}.hevc")
        dest = out / f"{spec.name}.hevc"
        dest.write_bytes(drop_encoder_sei((tmp / dest.name).read_bytes(), 39, True, b"x265"))
        paths.append(dest)
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    out = Path(argv[1])
    with tempfile.TemporaryDirectory() as t:
        for codec, make in (("h264", h264_seeds), ("hevc", hevc_seeds)):
            d = out / codec
            d.mkdir(parents=True, exist_ok=True)
            paths = make(d, Path(t))
            sizes = sorted(p.stat().st_size for p in paths)
            print(f"{codec}: {len(paths)} seeds in {d}, {sizes[0]}..{sizes[-1]} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
