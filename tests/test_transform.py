"""pycodec.transform block transforms and quantization steps against independent oracles: exact
inverse identities (hypothesis), the spec's integer inverse transforms (H.264 from
test_h264_invariants, HEVC written here from the spec's two-stage formula), FFmpeg's dequantization
formulas, and numpy == torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_h264_invariants import idct4, idct8

from pycodec import transform as T

PROFILE = settings(max_examples=40, deadline=None, derandomize=True)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def coeff_blocks(n: int, lim: int = 2048):
    return hnp.arrays(np.int64, (3, n, n), elements=st.integers(-lim, lim))


# ----------------------------------------------------------------------------------- oracles


def hevc_idct_int(c: np.ndarray, m: np.ndarray, bd: int = 8) -> np.ndarray:
    """The spec's integer inverse transform (8.6.4.2, as FFmpeg implements it): column pass
    clip16((M^T C + 64) >> 7), then row pass clip16((E M + 2^(19-bd)) >> (20-bd))."""
    c = np.asarray(c, np.int64)
    e = np.clip((m.T @ c + 64) >> 7, -32768, 32767)
    return np.clip((e @ m + (1 << (19 - bd))) >> (20 - bd), -32768, 32767)


# ----------------------------------------------------------------------------------- identities


class TestH264Pair:
    @pytest.mark.parametrize("n", [4, 8])
    @PROFILE
    @given(data=st.data())
    def test_forward_inverts_inverse(self, n, data):
        c = data.draw(coeff_blocks(n)).astype(np.float64)
        assert np.allclose(T.h264_forward(T.h264_inverse(c)), c, rtol=0, atol=1e-9)

    @pytest.mark.parametrize("n", [4, 8])
    @PROFILE
    @given(data=st.data())
    def test_inverse_inverts_forward(self, n, data):
        r = data.draw(hnp.arrays(np.float64, (2, n, n), elements=st.floats(-300, 300)))
        assert np.allclose(T.h264_inverse(T.h264_forward(r)), r, rtol=0, atol=1e-9)

    @pytest.mark.parametrize("n,idct", [(4, idct4), (8, idct8)])
    def test_inverse_matches_integer_idct_within_rounding(self, n, idct):
        rng = np.random.default_rng(11)
        c = rng.integers(-900, 900, (4000, n, n)) * (rng.random((4000, n, n)) < 0.35)
        g = T.h264_inverse(c)
        r = idct(c)
        assert np.abs(g - r).max() < 0.75
        assert np.mean(np.rint(g) != r) < 0.03
        dc = np.zeros((64, n, n), np.int64)
        dc[:, 0, 0] = np.arange(-32, 32) * 64  # multiples of 64: DC-only blocks are exact
        assert np.array_equal(T.h264_inverse(dc), idct(dc).astype(float))

    def test_orientation_row_is_vertical_frequency(self):
        c = np.zeros((4, 4))
        c[0, 1] = 64  # one horizontal frequency: varies along x only
        r = T.h264_inverse(c)
        assert np.allclose(r, r[0:1, :]) and not np.allclose(r, r[:, 0:1])

    @pytest.mark.parametrize("bad", [(3, 3), (4, 8), (16, 16)])
    def test_bad_block_size(self, bad):
        with pytest.raises(ValueError, match="4x4 or 8x8"):
            T.h264_inverse(np.zeros(bad))


class TestHevcPair:
    @pytest.mark.parametrize("kind,n", [("dct", 4), ("dct", 8), ("dct", 16), ("dct", 32), ("dst", 4),
                                        ("skip", 4), ("skip", 8), ("skip", 32)])
    @pytest.mark.parametrize("bd", [8, 10])
    @settings(max_examples=12, deadline=None, derandomize=True)
    @given(data=st.data())
    def test_roundtrips(self, kind, n, bd, data):
        c = data.draw(coeff_blocks(n, 4000)).astype(np.float64)
        assert np.allclose(T.hevc_forward(T.hevc_inverse(c, kind, bd), kind, bd), c, rtol=0, atol=1e-7)
        r = data.draw(hnp.arrays(np.float64, (2, n, n), elements=st.floats(-600, 600)))
        assert np.allclose(T.hevc_inverse(T.hevc_forward(r, kind, bd), kind, bd), r, rtol=0, atol=1e-9)

    def test_dct_matrix_rows_from_the_standard(self):
        m4 = T.hevc_dct_matrix(4)
        assert m4.tolist() == [[64, 64, 64, 64], [83, 36, -36, -83], [64, -64, -64, 64], [36, -83, 83, -36]]
        assert T.hevc_dct_matrix(8)[1].tolist() == [89, 75, 50, 18, -18, -50, -75, -89]
        assert T.hevc_dct_matrix(16)[1, :8].tolist() == [90, 87, 80, 70, 57, 43, 25, 9]
        assert T.hevc_dct_matrix(32)[1, :16].tolist() == [90, 90, 88, 85, 82, 78, 73, 67, 61, 54, 46, 38, 31, 22, 13, 4]
        for n in (4, 8, 16, 32):
            m = T.hevc_dct_matrix(n).astype(float)
            k, x = np.mgrid[0:n, 0:n]
            dct = 64 * np.sqrt(2) * np.cos((2 * x + 1) * k * np.pi / (2 * n))
            dct[0] = 64
            assert np.abs(m - dct).max() < 1.5  # integer approximation of the scaled DCT-II
            gram = m @ m.T / (64 * 64 * n)
            assert np.abs(gram - np.eye(n)).max() < 0.005  # nearly, not exactly, orthogonal

    @pytest.mark.parametrize("n", [4, 8, 16, 32])
    def test_dct_inverse_matches_integer_transform(self, n):
        rng = np.random.default_rng(n)
        m = T.hevc_dct_matrix(n)
        c = rng.integers(-3000, 3000, (300, n, n)) * (rng.random((300, n, n)) < 0.2)
        r = hevc_idct_int(c, m)
        g = T.hevc_inverse(c, "dct")
        assert np.abs(g - r).max() < 1.0
        assert np.mean(np.rint(g) != r) < 0.05

    def test_dst_inverse_matches_integer_transform(self):
        rng = np.random.default_rng(3)
        c = rng.integers(-3000, 3000, (2000, 4, 4))
        r = hevc_idct_int(c, T.hevc.DST4)
        assert np.abs(T.hevc_inverse(c, "dst") - r).max() < 1.0

    def test_transform_skip_scale(self):
        # 8-bit 4x4: r = (d + 16) >> 5, i.e. G = d / 32
        c = np.arange(-64, 64, dtype=np.float64).reshape(8, 4, 4)
        assert np.allclose(T.hevc_inverse(c, "skip", 8), c / 32)
        assert np.allclose(T.hevc_inverse(c, "skip", 10), c / 8)

    @pytest.mark.parametrize("args,match", [((np.zeros((8, 8)), "dst"), "4x4 only"), ((np.zeros((4, 4)), "idk"), "kind"),
                                            ((np.zeros((4, 8)), "dct"), "square"), ((np.zeros((2, 2)), "dct"), "4..32")])
    def test_bad_input(self, args, match):
        with pytest.raises(ValueError, match=match):
            T.hevc_inverse(*args)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fn", [T.h264_inverse, T.h264_forward, lambda x: T.hevc_inverse(x, "dct"),
                                lambda x: T.hevc_forward(x, "dst"), lambda x: T.hevc_forward(x, "skip")])
def test_numpy_and_torch_agree(fn, dtype, device):
    rng = np.random.default_rng(2)
    x = rng.normal(0, 200, (5, 4, 4))
    got = fn(torch.tensor(x, dtype=dtype, device=device))
    assert isinstance(got, torch.Tensor) and got.dtype == dtype and got.device.type == device
    tol = 1e-9 if dtype == torch.float64 else 1e-3
    assert np.allclose(got.cpu().numpy(), fn(x), rtol=1e-5 if dtype == torch.float32 else 0, atol=tol)


def test_numpy_path_does_not_import_torch():
    import subprocess

    code = ("import sys, numpy as np, pycodec, pycodec.transform as T; "
            "T.plane_forward(np.zeros((16, 16)), T.h264_layouts(*(np.zeros((4, 4), int),) * 2, np.full((4, 4), 16))[0]); "
            "T.hevc_inverse(np.ones((4, 4))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------------- steps


class TestH264Steps:
    def test_flat_values(self):
        # qp 28: qp%6 = 4 -> normAdjust (16, 20, 25), qp/6 = 4
        s = T.h264_qstep(28, 4)
        assert s[0, 0] == 256 and s[0, 1] == 320 and s[1, 1] == 400
        assert T.h264_qstep(24, 8)[0, 0] == 20 * 16 / 4
        assert T.h264_qmul(0, 4)[0, 0] == 10 * 16 * 4

    @PROFILE
    @given(qp=st.integers(0, 51), n=st.sampled_from([4, 8]), level=st.integers(-300, 300),
           w=st.integers(1, 255))
    def test_step_reproduces_ffmpeg_dequantization(self, qp, n, level, w):
        weights = np.full((n, n), w)
        qmul = T.h264_qmul(qp, n, weights)
        c = (level * qmul + 32) >> 6  # FFmpeg's CAVLC/CABAC dequantization
        assert np.array_equal(c, np.floor(level * T.h264_qstep(qp, n, weights) + 0.5).astype(np.int64))

    def test_custom_matrix_is_per_position(self):
        w = np.arange(1, 17).reshape(4, 4) * 8
        s = T.h264_qstep(12, 4, w)
        flat = T.h264_qstep(12, 4)
        assert np.allclose(s, flat * w / 16)

    def test_dc_steps(self):
        # luma i16 DC: qmul_dc = 16 * normAdjust(qp%6, 0) << (qp/6 + 2), step qmul/256
        assert T.h264_dc_step(28, "luma") == (16 * 16 << 6) / 256
        assert T.h264_dc_step(28, "chroma") == (16 * 16 << 6) / 128
        with pytest.raises(ValueError, match="plane"):
            T.h264_dc_step(28, "alpha")

    def test_dc_hadamard_round_trips_and_matches_dequant(self):
        rng = np.random.default_rng(4)
        z = rng.normal(size=(6, 4, 4))
        assert np.allclose(T.luma_dc_to_hadamard(T.luma_dc_from_hadamard(z)), z)
        z2 = rng.normal(size=(6, 2, 2))
        assert np.allclose(T.chroma_dc_to_hadamard(T.chroma_dc_from_hadamard(z2)), z2)
        # the decoder's DC = H L H qmul/256 (+rounding): in the Hadamard domain it is level * step
        lv = rng.integers(-20, 20, (50, 4, 4))
        qp = 26
        qmul = int(T.h264_qmul(qp, 4)[0, 0])
        d = T.luma_dc_dequant(lv, qmul)
        z = T.luma_dc_to_hadamard(d)
        assert np.abs(z - lv * T.h264_dc_step(qp, "luma")).max() <= 0.5
        lc = rng.integers(-20, 20, (50, 2, 2))
        dc = T.chroma_dc_dequant(lc, qmul)
        assert np.abs(T.chroma_dc_to_hadamard(dc) - lc * T.h264_dc_step(qp, "chroma")).max() < 1.0

    def test_chroma_qp(self):
        assert T.h264_chroma_qp(29) == 29 and T.h264_chroma_qp(30) == 29 and T.h264_chroma_qp(51) == 39
        assert T.h264_chroma_qp(40, -2) == T.h264_chroma_qp(38)

    @pytest.mark.parametrize("args,match", [((52, 4), "0..51"), ((20, 16), "4 or 8"), ((20, 4, np.zeros((4, 4))), "1..255")])
    def test_bad_input(self, args, match):
        with pytest.raises(ValueError, match=match):
            T.h264_qstep(*args)


class TestHevcSteps:
    @PROFILE
    @given(qp=st.integers(0, 51), n=st.sampled_from([4, 8, 16, 32]), level=st.integers(-500, 500),
           m=st.integers(1, 255), bd=st.sampled_from([8, 10]))
    def test_step_reproduces_dequantization(self, qp, n, level, m, bd):
        sc = np.full((n, n), m)
        d = T.hevc_dequant(np.full((n, n), level), qp, n, bd, sc)
        exp = np.clip(np.floor(level * T.hevc_qstep(qp, n, bd, sc) + 0.5), -32768, 32767)
        assert np.array_equal(d, exp)

    def test_flat_value(self):
        # 8-bit 4x4 qp 4: levelScale 64, shift 5, m 16 -> 32
        assert np.all(T.hevc_qstep(4, 4) == 32)
        assert np.all(T.hevc_qstep(4, 32) == 4)
        with pytest.raises(ValueError, match="QP"):
            T.hevc_qstep(52, 4)
