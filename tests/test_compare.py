"""pycodec compare: figures against independent arithmetic on known differences (whole frame and
face regions), the plot, and refusals (frame count, size, missing file)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line, run

from pycodec import metrics as M
from pycodec.samples import TalkingHead

FPS = 25


def write_y4m(path: Path, frames: list[np.ndarray]) -> Path:
    """Raw yuv420p frames (grey chroma) so that what is compared is exactly what was written."""
    import av

    with av.open(str(path), "w", format="yuv4mpegpipe") as out:
        st = out.add_stream("rawvideo", rate=Fraction(FPS))
        st.height, st.width = frames[0].shape
        st.pix_fmt = "yuv420p"
        for t, y in enumerate(frames):
            h, w = y.shape
            buf = np.concatenate([y.ravel(), np.full(h * w // 2, 128, np.uint8)]).reshape(h * 3 // 2, w)
            vf = av.VideoFrame.from_ndarray(buf, format="yuv420p")
            vf.pts, vf.time_base = t, Fraction(1, FPS)
            for p in st.encode(vf):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    scene = TalkingHead(160, 160, FPS, 0)
    gt = [(scene.frame(t) @ [0.299, 0.587, 0.114]).astype(np.uint8) for t in range(6)]
    rng = np.random.default_rng(0)
    noisy = [np.clip(g + rng.normal(0, 4, g.shape), 0, 255).astype(np.uint8) for g in gt]
    half = [((g.astype(int) + n) // 2).astype(np.uint8) for g, n in zip(gt, noisy)]
    return {"gt": write_y4m(d / "gt.y4m", gt), "a": write_y4m(d / "a.y4m", noisy), "b": write_y4m(d / "b.y4m", half),
            "short": write_y4m(d / "short.y4m", noisy[:4]), "small": write_y4m(d / "small.y4m", [g[:96, :96] for g in gt]),
            "frames": (gt, noisy, half)}


class TestCompare:
    def test_against_a_reference(self, clips):
        from pycodec.compare import compare

        res = compare(str(clips["a"]), str(clips["b"]), str(clips["gt"]), progress=False)
        gt, a, b = clips["frames"]
        assert res.frames == 6 and res.faces == 1 and res.face_frames == 6
        for name, frames in (("A", a), ("B", b)):
            f = res.sides[name].figures()
            sse = sum(M.squared_error(g, x)[0] for g, x in zip(gt, frames))
            assert f["y_psnr"] == pytest.approx(M.psnr_of(sse, 6 * 160 * 160), abs=1e-9)
            assert f["y_ssim"] == pytest.approx(np.mean([M.ssim(g, x) for g, x in zip(gt, frames)]), abs=1e-9)
        fa, fb = res.sides["A"].figures(), res.sides["B"].figures()
        assert fb["y_psnr"] > fa["y_psnr"] + 4 and fb["face_y_psnr"] > fa["face_y_psnr"] + 4
        assert "B - A" in "\n".join(res.lines())

    def test_face_region_is_the_face(self, clips):
        from pycodec.compare import compare

        # B differs from A only outside the face region: the face figures say "identical"
        gt, a, _ = clips["frames"]
        res = compare(str(clips["gt"]), str(clips["a"]), progress=False)
        assert res.sides["B"].figures()["face_y_psnr"] < 60
        from pycodec.tracks import FaceTracks

        tr = FaceTracks()
        for g in gt:
            tr.add(g)
        (track,) = tr.finish(FPS)
        tracks_box = [M.region(g.shape, track.box(t)) for t, g in enumerate(gt)]
        outside = []
        for t, g in enumerate(gt):
            x = a[t].copy()
            x[tracks_box[t]] = g[tracks_box[t]]
            outside.append(x)
        p = write_y4m(Path(clips["gt"]).parent / "outside.y4m", outside)
        res = compare(str(clips["gt"]), str(p), progress=False)
        f = res.sides["B"].figures()
        assert f["face_y_psnr"] == float("inf") and f["y_psnr"] < 60

    def test_cli_json_and_plot(self, clips, tmp_path, capsys):
        rc, so, se = run(capsys, "compare", clips["a"], clips["b"], "--reference", clips["gt"], "--json", "-q",
                         "--plot", tmp_path / "p.png")
        assert rc == 0, se
        d = json.loads(so)
        assert d["frames"] == 6 and set(d["figures"]) == {"A", "B"}
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"

    @pytest.mark.parametrize(("case", "needles"), [
        ("short", ("short.y4m", "has 4 frames", "same frame count")),
        ("small", ("small.y4m", "96x96", "same size")),
        ("missing", ("missing.y4m", "no such file")),
    ])
    def test_refusals(self, clips, tmp_path, capsys, case, needles):
        other = clips[case] if case != "missing" else tmp_path / "missing.y4m"
        rc, _, se = run(capsys, "compare", clips["a"], other, "-q")
        assert rc == 2
        one_error_line(se, *needles)

    def test_plot_must_be_png(self, clips, tmp_path, capsys):
        rc, _, se = run(capsys, "compare", clips["a"], clips["b"], "--plot", tmp_path / "p.jpg")
        assert rc == 2
        one_error_line(se, "p.jpg", "PNG")
