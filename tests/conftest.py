"""Shared fixtures: generated H.264 streams (cached per session), their bitstream syntax, the
independent PyAV decode (the oracle), and pycodec decodes."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import h264_bitstream as hb
import streams as S

# frame/flags bits (docs/dev-contract.md section 3)
CORRUPT, INCOMPLETE, UNSUPPORTED, LOSSLESS, PCM, NO_EXPORT = (1 << i for i in range(6))


def import_pycodec():
    try:
        import pycodec
    except ImportError as exc:  # a missing build is a failure, not a skip
        pytest.fail(f"pycodec cannot be imported ({exc}); build the extension with `make ext`", pytrace=False)
    return pycodec


@pytest.fixture(scope="session")
def pycodec():
    return import_pycodec()


# ------------------------------------------------------------------- whole-stream comparisons


def frame_type(t):
    return chr(t) if isinstance(t, (int, np.integer)) else str(t)


def frames_md5(frames, group="decoded"):
    h = hashlib.md5()
    for f in frames:
        for k in "yuv":
            h.update(np.ascontiguousarray(f.arrays[f"{group}/{k}"]).tobytes())
    return h.hexdigest()


def assert_export_keeps_output(full, plain):
    """Frames decoded with every field and with pictures only: same pictures and frame metadata."""
    assert len(full) == len(plain)
    assert frames_md5(full) == frames_md5(plain)
    for a, b in zip(full, plain):
        assert set(b.arrays) == {"decoded/y", "decoded/u", "decoded/v"}
        assert (a.poc, a.decode_index, frame_type(a.type), a.key, a.pkt_bytes) == \
               (b.poc, b.decode_index, frame_type(b.type), b.key, b.pkt_bytes)


def assert_runs_identical(a, b, name):
    """Two independent decodes of stream ``name`` give identical arrays and metadata."""
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        assert set(fa.arrays) == set(fb.arrays)
        for k in fa.arrays:
            assert fa.arrays[k].dtype == fb.arrays[k].dtype
            assert np.array_equal(fa.arrays[k], fb.arrays[k]), f"{name} frame {fa.index} {k} differs between runs"
        assert (fa.poc, fa.pts, int(fa.flags)) == (fb.poc, fb.pts, int(fb.flags))


# ----------------------------------------------------------------------------------- PyAV oracle


class RefFrame:
    """One frame as PyAV's own FFmpeg decodes it (display order)."""

    __slots__ = ("key", "mvs", "pict_type", "planes", "pts", "qp_map")

    def __init__(self, planes, mvs, qp_map, pict_type, key, pts):
        self.planes, self.mvs, self.qp_map = planes, mvs, qp_map
        self.pict_type, self.key, self.pts = pict_type, key, pts


def _plane_array(plane, dtype):
    bps = np.dtype(dtype).itemsize
    a = np.frombuffer(bytes(plane), dtype=dtype).reshape(plane.height, plane.line_size // bps)
    return a[:, :plane.width].copy()


def pyav_frames(path, side_data=True):
    """Decode ``path`` with PyAV (threads=1), exporting FFmpeg's motion vectors and venc_params.

    Yields RefFrame in display order: planes (y, u, v numpy arrays at display size), mvs
    (structured array of AVMotionVector, empty when the frame has none), qp_map ((mb_h, mb_w) int
    array from VIDEO_ENC_PARAMS, None when absent), pict_type ('I'/'P'/'B'/...), key, pts.
    """
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.thread_count = 1
        vs.thread_type = "SLICE"
        if side_data:
            vs.codec_context.options = {"export_side_data": "mvs+venc_params"}
        for fr in c.decode(vs):
            fmt = fr.format.name
            dtype = "<u2" if ("10" in fmt or "16" in fmt or "12" in fmt) else np.uint8
            planes = [_plane_array(p, dtype) for p in fr.planes[:3]]
            mvs = np.zeros(0)
            qp_map = None
            if side_data:
                for sd in fr.side_data:
                    name = sd.type.name
                    if name == "MOTION_VECTORS":
                        mvs = sd.to_ndarray().copy()
                    elif name == "VIDEO_ENC_PARAMS":
                        nb = sd.nb_blocks
                        blocks = [sd.block_params(i) for i in range(nb)]
                        sx = np.array([b.src_x for b in blocks]) // 16
                        sy = np.array([b.src_y for b in blocks]) // 16
                        dq = np.array([b.delta_qp for b in blocks])
                        qp_map = np.full((sy.max() + 1, sx.max() + 1), -1000, np.int32)
                        qp_map[sy, sx] = sd.qp + dq
            pt = int(fr.pict_type)
            yield RefFrame(planes, mvs, qp_map, {1: "I", 2: "P", 3: "B"}.get(pt, str(pt)), bool(fr.key_frame), fr.pts)


def pyav_decode(path, max_frames=None, side_data=True):
    """The first ``max_frames`` (all when None) RefFrames of ``path`` as a list."""
    out = []
    for rf in pyav_frames(path, side_data):
        out.append(rf)
        if max_frames and len(out) >= max_frames:
            break
    return out


def pycodec_decode(path, fields=None, frames=None):
    pc = import_pycodec()
    with pc.open(str(path), fields=fields, frames=frames) as r:
        info = dict(r.info)
        return info, list(r)


# ----------------------------------------------------------------------------------- streams


class StreamStore:
    """Builds the generated streams on first use and caches derived data for the session."""

    def __init__(self, root: Path):
        self.root = root
        self._paths: dict[str, Path] = {}
        self._syntax: dict[str, hb.StreamSyntax] = {}
        self._ref: dict[str, list] = {}
        self._dec: dict = {}

    def spec(self, name) -> S.StreamSpec:
        return S.SPECS[name]

    def path(self, name) -> Path:
        if name not in self._paths:
            self._paths[name] = S.build(S.SPECS[name], self.root)
        return self._paths[name]

    def syntax(self, name) -> hb.StreamSyntax:
        if name not in self._syntax:
            self._syntax[name] = hb.analyze_file(str(self.path(name)))
        return self._syntax[name]

    def reference(self, name) -> list:
        if name not in self._ref:
            self._ref[name] = pyav_decode(self.path(name))
        return self._ref[name]

    def decode(self, name, fields=None):
        """pycodec decode (info, frames); the all-fields decode of each stream is cached."""
        key = (name, fields)
        if fields is not None:
            return pycodec_decode(self.path(name), fields)
        if key not in self._dec:
            self._dec[key] = pycodec_decode(self.path(name), None)
        return self._dec[key]


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> StreamStore:
    return StreamStore(tmp_path_factory.mktemp("streams"))


# ----------------------------------------------------------------------------------- HEVC streams


@pytest.fixture(scope="session")
def hevc_store(tmp_path_factory):
    """The generated HEVC streams (tests/hevc_streams.py), built on first use, cached per session."""
    import hevc_streams

    return hevc_streams.HevcStore(tmp_path_factory.mktemp("hevc_streams"))


def run(capsys, *argv) -> tuple[int, str, str]:
    """Run the command line in this process: (exit code, stdout, stderr)."""
    from pycodec import cli

    rc = cli.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_error_line(err: str, *needles: str) -> str:
    """The one stderr line of a failed command, "<what is wrong>; <what to do>", holding ``needles``."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pycodec: error: "), err
    assert "; " in lines[0], err
    for n in needles:
        assert n in lines[0], (n, err)
    return lines[0]
