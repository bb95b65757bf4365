"""Figures of extracted frames: expected panels, missing-field titles, residual colormap centred at 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pycodec import store, viz
from pycodec.samples import synthetic_frames

INFO = {
    "codec": "h264",
    "width": 60,
    "height": 44,
    "coded_width": 64,
    "coded_height": 48,
    "bit_depth": 8,
    "chroma_format": "420",
    "frame_rate": (30, 1),
    "time_base": (1, 30),
    "crop": (0, 4, 0, 4),
}


def extracted(tmp_path, groups: str):
    """A file of 4 synthetic frames (60x44 display, 64x48 coded) with the given groups."""
    frames = list(synthetic_frames(60, 44, n=4, groups=groups, seed=11))
    out = tmp_path / "v.h5"
    store.write_frames(out, frames, store.root_attrs(INFO, groups.split(","), "/in.mp4", "00"))
    return out, frames


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_all_panels(tmp_path):
    out, _ = extracted(tmp_path, "frame,decoded,prediction,residual,block,h264")
    with store.open_h5(out) as f:
        fig = viz.frame_figure(f, 2)
    t = "\n".join(titles(fig))
    for needle in (
        "motion vectors",
        "transform partitions",
        "QP heat map",
        "prediction (Y)",
        "residual (Y)",
        "block mode",
    ):
        assert needle in t, needle
    assert "missing" not in t
    assert "frame 2 of 4" in fig._suptitle.get_text()
    # A colorbar each for QP, prediction and residual.
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 3
    # Axes show the display area (60x44), not the coded area.
    assert fig.axes[0].get_xlim() == (0, 60) and fig.axes[0].get_ylim() == (44, 0)


def test_residual_colormap_centred(tmp_path):
    out, frames = extracted(tmp_path, "frame,residual")
    with store.open_h5(out) as f:
        fig = viz.frame_figure(f, 1)
    ax = next(a for a in fig.axes if a.get_title().startswith("residual"))
    im = ax.get_images()[0]
    lo, hi = im.get_clim()
    assert lo == -hi and hi >= 1
    assert im.get_cmap().name == "RdBu_r"
    np.testing.assert_array_equal(im.get_array(), frames[1]["residual/y"])


def test_missing_fields_are_named(tmp_path):
    out, _ = extracted(tmp_path, "frame,decoded")
    with store.open_h5(out) as f:
        fig = viz.frame_figure(f, 0)
    t = "\n".join(titles(fig))
    for name in ("block/mv_l0", "block/qp_y", "prediction/y", "residual/y", "block/mode", "block/tkind"):
        assert f"missing: {name}" in t or (name in t and "missing" in t), name


def test_save_png(tmp_path):
    out, _ = extracted(tmp_path, "frame,decoded,block")
    png = viz.save_frame_figure(out, 3, tmp_path / "f.png")
    data = Path(png).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "v.h5"]  # no temp file left


def test_out_of_range_frame(tmp_path):
    out, _ = extracted(tmp_path, "frame")
    with store.open_h5(out) as f, pytest.raises(IndexError):
        viz.frame_figure(f, 4)


def test_yuv_to_rgb():
    y = np.full((4, 4), 235, np.uint8)
    c = np.full((2, 2), 128, np.uint8)
    np.testing.assert_allclose(viz.yuv_to_rgb(y, c, c), 1.0, atol=1e-3)
    np.testing.assert_allclose(viz.yuv_to_rgb(np.full((4, 4), 16, np.uint8), c, c), 0.0, atol=1e-3)
    red = viz.yuv_to_rgb(
        np.full((2, 2), 81, np.uint8), np.full((1, 1), 90, np.uint8), np.full((1, 1), 240, np.uint8)
    )
    assert red[0, 0, 0] > 0.9 and red[0, 0, 1] < 0.1 and red[0, 0, 2] < 0.1
    assert viz.yuv_to_rgb(y, None, None).shape == (4, 4, 3)


def test_wide_frames_use_three_rows(tmp_path):
    frames = list(synthetic_frames(128, 48, n=2, groups="frame,decoded,residual,block", seed=12))
    info = dict(INFO, width=128, height=48, coded_width=128, coded_height=48, crop=(0, 0, 0, 0))
    out = tmp_path / "w.h5"
    store.write_frames(
        out, frames, store.root_attrs(info, ["frame", "decoded", "residual", "block"], "/x", "0")
    )
    with store.open_h5(out) as f:
        fig = viz.frame_figure(f, 1)
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 6
    assert len({round(ax.get_position().x0, 2) for ax in panels}) == 2  # two columns
    assert "motion vectors" in panels[0].get_title() and "prediction (Y)" in "".join(titles(fig))
