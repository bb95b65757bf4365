"""HEVC through the unchanged front ends: `pycodec extract | info | show` and the HDF5 file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import pycodec
from pycodec import cli, store
from pycodec.samples import make_talking_sample

W, H, N = 96, 64, 10
X265 = {"x265-params": "bframes=2:keyint=6:log-level=error"}


@pytest.fixture(scope="module")
def hevc_media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hevc_media")
    return {
        "main": Path(make_talking_sample(d / "main.mp4", W, H, N, codec="libx265", codec_options=X265, seed=5)),
        "main10": Path(
            make_talking_sample(d / "main10.mkv", W, H, 6, codec="libx265", codec_options=X265,
                                pix_fmt="yuv420p10le", seed=6)
        ),
    }


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


class TestExtractHevc:
    def test_file_matches_reader(self, capsys, tmp_path, hevc_media):
        out = tmp_path / "main.h5"
        rc, stdout, err = run(capsys, "extract", hevc_media["main"], out)
        assert rc == 0, err
        assert "fields    frame,decoded,prediction,residual,recon,coeffs,levels,qstep,block,hevc" in stdout
        with pycodec.open(hevc_media["main"]) as r:
            ref = list(r)
        with store.open_h5(out) as f:
            assert f.attrs["codec"] == "hevc" and len(f) == len(ref) == N
            assert "h264" not in f.groups and "hevc" in f.groups
            for fr in ref:
                got = f.frame(fr.index)
                assert (got["type"], got["poc"]) == (fr.type, fr.poc)
                for name, a in fr.arrays.items():
                    np.testing.assert_array_equal(got[name], a, err_msg=name)

    def test_main10_planes_are_uint16(self, capsys, tmp_path, hevc_media):
        out = tmp_path / "main10.h5"
        rc, _, err = run(capsys, "extract", hevc_media["main10"], out, "--fields", "recon,prediction,residual,block")
        assert rc == 0, err
        with h5py.File(out) as f:
            assert f.attrs["bit_depth"] == 10
            assert f["recon/y"].dtype == np.uint16 and f["prediction/u"].dtype == np.uint16
            assert int(f["recon/y"][...].max()) > 255  # really 10-bit samples
            rec = f["recon/y"][...].astype(np.int32)
            pred_res = f["prediction/y"][...].astype(np.int32) + f["residual/y"][...]
            np.testing.assert_array_equal(rec, np.clip(pred_res, 0, 1023))
            qp = f["block/qp_y"][...]
            assert qp.min() >= 12  # Qp'Y includes QpBdOffset (12 at 10 bits)

    def test_other_codecs_extras_refused(self, capsys, tmp_path, hevc_media):
        out = tmp_path / "o.h5"
        rc, _, err = run(capsys, "extract", hevc_media["main"], out, "--fields", "frame,h264")
        assert rc == 2
        lines = err.splitlines()
        assert len(lines) == 1 and "'h264' holds h264 extras" in lines[0] and "hevc" in lines[0]
        assert os.listdir(tmp_path) == []

    def test_info(self, capsys, hevc_media):
        rc, stdout, _ = run(capsys, "info", hevc_media["main10"])
        assert rc == 0
        assert "hevc" in stdout and "yuv420p10le" in stdout


class TestShowHevc:
    def test_quadtree_figure(self, capsys, tmp_path, hevc_media):
        h5 = tmp_path / "s.h5"
        assert run(capsys, "extract", hevc_media["main"], h5, "--fields", "decoded,prediction,residual,block,hevc")[0] == 0
        png = tmp_path / "s.png"
        rc, _, err = run(capsys, "show", h5, "--frame", "3", "-o", png)
        assert rc == 0, err
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        from pycodec import viz

        with store.open_h5(h5) as f:
            fig = viz.frame_figure(f, 3)
            titles = [ax.get_title() for ax in fig.axes]
            assert any("CU quadtree (white) + TU quadtree (black)" in t for t in titles)
            viz.plt.close(fig)
