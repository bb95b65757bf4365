"""Whole-plane transforms, layouts from block maps and quantization intervals: exact round trips
(hypothesis over random block layouts), a per-block loop as the oracle for the vectorised plane
code, the H.264 DC-path domain, HEVC chroma geometry, and the interval formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pycodec import transform as T
from pycodec.transform import layout as LY

PROFILE = settings(max_examples=25, deadline=None, derandomize=True)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_h264_maps(rng: np.random.Generator, mbh: int, mbw: int, force_pcm: bool = False):
    """Random but legal H.264 block maps: per MB one of i4x4, i8x8, i16, inter 4x4/8x8 (with some
    uncoded quadrants), skip, PCM."""
    tk = np.zeros((mbh * 4, mbw * 4), np.uint8)
    mode = np.zeros_like(tk)
    pu = np.zeros_like(tk)
    for my in range(mbh):
        for mx in range(mbw):
            sl = np.s_[my * 4:my * 4 + 4, mx * 4:mx * 4 + 4]
            kind = 6 if force_pcm and my == mx == 0 else rng.integers(0, 7)
            coded = np.repeat(np.repeat(rng.random((2, 2)) < 0.7, 2, 0), 2, 1)
            if kind == 0:
                mode[sl], pu[sl], tk[sl] = 0, 4, np.where(coded, 1, 0)
            elif kind == 1:
                mode[sl], pu[sl], tk[sl] = 0, 8, np.where(coded, 2, 0)
            elif kind == 2:
                mode[sl], pu[sl], tk[sl] = 0, 16, 3
            elif kind == 3:
                mode[sl], pu[sl], tk[sl] = 1, 8, np.where(coded, 1, 0)
            elif kind == 4:
                coded[0, 0] = True
                mode[sl], pu[sl], tk[sl] = 1, 16, np.where(coded, 2, 0)
            elif kind == 5:
                mode[sl], pu[sl], tk[sl] = 2, 16, 0
            else:
                mode[sl], pu[sl], tk[sl] = 3, 16, 4
    return tk, mode, pu


def loop_forward_h264(x: np.ndarray, lay: T.PlaneLayout) -> np.ndarray:
    """Oracle: per-block F with explicit loops, then the DC groups' Hadamard."""
    out = x.astype(np.float64).copy()
    h, w = x.shape
    for by in range(0, h, 4):
        for bx in range(0, w, 4):
            fam, lg = lay.family[by // 4, bx // 4], lay.log2[by // 4, bx // 4]
            n = 1 << lg
            if fam == LY.FREE or by % n or bx % n:
                continue
            out[by:by + n, bx:bx + n] = T.h264_forward(x[by:by + n, bx:bx + n])
    g = 16 if lay.dc.max() <= 1 else 8
    for gy in range(0, h, g):
        for gx in range(0, w, g):
            code = lay.dc[gy // 4, gx // 4]
            if code == LY.DC_LUMA16:
                dcs = out[gy:gy + 16:4, gx:gx + 16:4]
                out[gy:gy + 16:4, gx:gx + 16:4] = T.h264.H4 @ dcs @ T.h264.H4 / 16
            elif code == LY.DC_CHROMA2:
                dcs = out[gy:gy + 8:4, gx:gx + 8:4]
                out[gy:gy + 8:4, gx:gx + 8:4] = T.h264.H2 @ dcs @ T.h264.H2 / 4
    return out


class TestH264Layouts:
    def test_sizes_follow_ffmpeg_8x8dct(self):
        tk, mode, pu = random_h264_maps(np.random.default_rng(0), 3, 4)
        luma, chroma = T.h264_layouts(tk, mode, pu)
        for my in range(3):
            for mx in range(4):
                sl = np.s_[my * 4:my * 4 + 4, mx * 4:mx * 4 + 4]
                is8 = (tk[sl] == 2).any() or (mode[sl][0, 0] == 0 and pu[sl][0, 0] == 8)
                free = mode[sl][0, 0] == 3
                assert np.all(luma.log2[sl] == (3 if is8 and not free else 2))
                assert np.all(luma.family[sl] == (LY.FREE if free else LY.H264))
                assert np.all(luma.dc[sl] == (1 if tk[sl][0, 0] == 3 else 0))
        assert chroma.shape == (6, 8) and set(np.unique(chroma.dc)) <= {0, 2}
        assert np.array_equal(chroma.family == LY.FREE, mode[::2, ::2] == 3)

    def test_bad_maps(self):
        with pytest.raises(ValueError, match="one shape"):
            T.h264_layouts(np.zeros((4, 4)), np.zeros((4, 8)), np.zeros((4, 4)))
        with pytest.raises(ValueError, match="whole macroblocks"):
            T.h264_layouts(np.zeros((6, 4)), np.zeros((6, 4)), np.zeros((6, 4)))

    def test_plane_size_must_match_layout(self):
        luma, _ = T.h264_layouts(*random_h264_maps(np.random.default_rng(1), 1, 1))
        with pytest.raises(ValueError, match="coded size"):
            T.plane_forward(np.zeros((16, 20)), luma)


class TestPlaneTransforms:
    @PROFILE
    @given(seed=st.integers(0, 2**31 - 1), mbh=st.integers(1, 3), mbw=st.integers(1, 3))
    def test_h264_round_trip_and_loop_oracle(self, seed, mbh, mbw):
        rng = np.random.default_rng(seed)
        luma, chroma = T.h264_layouts(*random_h264_maps(rng, mbh, mbw))
        for lay, shape in ((luma, (16 * mbh, 16 * mbw)), (chroma, (8 * mbh, 8 * mbw))):
            x = rng.normal(0, 40, shape)
            c = T.plane_forward(x, lay)
            assert np.allclose(c, loop_forward_h264(x, lay), atol=1e-9)
            assert np.allclose(T.plane_inverse(c, lay), x, atol=1e-9)
            c0 = T.plane_forward(x, lay, dc_domain=False)
            assert np.allclose(T.to_dc_domain(c0, lay), c, atol=1e-9)
            assert np.allclose(T.from_dc_domain(c, lay), c0, atol=1e-9)
            free = np.repeat(np.repeat(lay.family == LY.FREE, 4, 0), 4, 1)
            assert np.array_equal(c[free], x[free])  # FREE blocks pass through

    @PROFILE
    @given(seed=st.integers(0, 2**31 - 1))
    def test_hevc_round_trip_and_loop_oracle(self, seed):
        rng = np.random.default_rng(seed)
        tk, lg, mode = random_hevc_maps(rng, 2, 3)
        luma, chroma = T.hevc_layouts(tk, lg, mode, bit_depth=8)
        x = rng.normal(0, 40, (64, 96))
        c = T.plane_forward(x, luma)
        assert np.allclose(T.plane_inverse(c, luma), x, atol=1e-8)
        kinds = {LY.HEVC_DCT: "dct", LY.HEVC_DST: "dst", LY.HEVC_SKIP: "skip"}
        for by in range(0, 64, 4):
            for bx in range(0, 96, 4):
                fam, n = luma.family[by // 4, bx // 4], 1 << luma.log2[by // 4, bx // 4]
                if fam == LY.FREE or by % n or bx % n:
                    continue
                exp = T.hevc_forward(x[by:by + n, bx:bx + n], kinds[int(fam)])
                assert np.allclose(c[by:by + n, bx:bx + n], exp, atol=1e-8)
        xc = rng.normal(0, 40, (32, 48))
        assert np.allclose(T.plane_inverse(T.plane_forward(xc, chroma), chroma), xc, atol=1e-8)

    def test_hevc_chroma_geometry(self):
        # one 16x16 luma area: top-left 8x8 split into 4x4 TUs, the rest 8x8 TUs
        lg = np.full((4, 4), 3, np.uint8)
        lg[:2, :2] = 2
        tk = np.full((4, 4), 6, np.uint8)
        tk[:2, :2] = 7  # DST for intra luma 4x4
        _, chroma = T.hevc_layouts(tk, lg, np.zeros((4, 4), np.uint8))
        assert chroma.log2.tolist() == [[2, 2], [2, 2]]  # 4x4 luma TUs: one chroma 4x4 at the parent 8x8
        assert np.all(chroma.family == LY.HEVC_DCT)  # no chroma DST
        lg32 = np.full((8, 8), 5, np.uint8)
        _, c32 = T.hevc_layouts(np.full((8, 8), 6), lg32, np.ones((8, 8)))
        assert np.all(c32.log2 == 4)  # chroma TU = half the luma TU
        _, cskip = T.hevc_layouts(np.zeros((4, 4)), np.zeros((4, 4)), np.full((4, 4), 2))
        assert np.all(cskip.family == LY.FREE)  # skipped CU: no TU size, no constraint

    def test_hevc_bad_maps(self):
        with pytest.raises(ValueError, match="tu_log2"):
            T.hevc_layouts(np.zeros((2, 2)), np.full((2, 2), 6), np.zeros((2, 2)))

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_torch_matches_numpy_batched(self, device, dtype):
        rng = np.random.default_rng(5)
        maps = [random_h264_maps(rng, 2, 2) for _ in range(3)]
        luma, _ = T.h264_layouts(*(np.stack(m) for m in zip(*maps)))
        x = rng.normal(0, 40, (3, 32, 32))
        ref = T.plane_forward(x, luma)
        got = T.plane_forward(torch.tensor(x, dtype=dtype, device=device), luma.to_torch(device))
        assert got.dtype == dtype and got.device.type == device
        assert np.allclose(got.cpu().numpy(), ref, atol=1e-9 if dtype == torch.float64 else 2e-2)
        for i in range(3):  # batch element i == the unbatched computation
            li = luma.map(lambda a, i=i: a[i])
            assert np.allclose(ref[i], T.plane_forward(x[i], li), atol=1e-9)


def random_hevc_maps(rng: np.random.Generator, ctbh: int, ctbw: int):
    """Random TU quadtrees in 32x32 CTBs: tkind (DCT/DST at 4x4 intra/skip/none) and tu_log2."""
    tk = np.zeros((ctbh * 8, ctbw * 8), np.uint8)
    lg = np.zeros_like(tk)
    mode = np.zeros_like(tk)

    def split(y, x, log2):
        if log2 > 2 and rng.random() < 0.6:
            h = 1 << (log2 - 3)
            for dy in (0, h):
                for dx in (0, h):
                    split(y + dy, x + dx, log2 - 1)
            return
        s = np.s_[y:y + (1 << (log2 - 2)), x:x + (1 << (log2 - 2))]
        r = rng.random()
        lg[s] = log2
        if r < 0.1:
            tk[s], lg[s] = 0, 0  # skipped: no TU
            mode[s] = 2
        elif r < 0.2:
            tk[s] = 0  # cbf 0 TU
        elif r < 0.3 and log2 == 2:
            tk[s] = 8
        elif log2 == 2 and r < 0.6:
            tk[s] = 7
        else:
            tk[s] = 6
        if r >= 0.1:
            mode[s] = 0 if tk[s].flat[0] == 7 else rng.integers(0, 2)

    for cy in range(ctbh):
        for cx in range(ctbw):
            split(cy * 8, cx * 8, 5)
    return tk, lg, mode


class TestIntervals:
    def test_symmetric_is_the_papers(self):
        c = np.array([-96.0, -32.0, 0.0, 32.0, 10.0])
        s = np.array([32.0, 32.0, 32.0, 32.0, 20.0])
        lo, hi = T.intervals(c, s)
        assert np.array_equal(lo, c - s / 2) and np.array_equal(hi, c + s / 2)

    def test_deadzone_is_sign_aware(self):
        m = T.IntervalModel(theta_intra=0.25, theta_inter=0.125)
        c = np.array([64.0, -64.0, 0.0, 64.0])
        s = np.full(4, 32.0)
        intra = np.array([True, True, True, False])
        lo, hi = T.intervals(c, s, m, intra=intra)
        assert lo.tolist() == [64 - 8, -64 - 24, -24, 64 - 4]
        assert hi.tolist() == [64 + 24, -64 + 8, 24, 64 + 28]

    def test_trellis_and_unconstrained(self):
        m = T.IntervalModel.x264_trellis()
        lo, hi = T.intervals(np.array([32.0, 0.0, 5.0]), np.array([32.0, 32.0, 0.0]), m,
                             constrained=np.array([True, True, True]))
        assert lo[:2].tolist() == [16, -48] and hi[:2].tolist() == [80, 48]
        assert lo[2] == -np.inf and hi[2] == np.inf
        lo, hi = T.intervals(np.array([32.0]), np.array([32.0]), constrained=np.array([False]))
        assert lo[0] == -np.inf and hi[0] == np.inf

    def test_presets_and_validation(self):
        assert T.IntervalModel.symmetric().is_symmetric
        dz = T.IntervalModel.x264_deadzone()
        assert dz.theta_intra == 21 / 64 and dz.theta_inter == 11 / 64 and not dz.is_symmetric
        d5 = T.IntervalModel.x265_deadzone(pad=0)
        assert (d5.theta_intra, d5.theta_inter) == (171 / 512, 85 / 512)
        # x265 (rdoq-level 0): level = floor(|x| / s + theta); every such x is inside its cell
        s, th = 10.0, 85 / 512
        x = np.linspace(-60, 60, 2001)
        lv = np.sign(x) * np.floor(np.abs(x) / s + th)
        lo, hi = T.intervals(lv * s, np.full(x.shape, s), d5)
        assert np.all((x >= lo - 1e-9) & (x <= hi + 1e-9))
        for bad in ({"theta_intra": 1.5}, {"widen_in": -1}, {"zero_halfwidth": -0.1}):
            with pytest.raises(ValueError):
                T.IntervalModel(**bad)

    @PROFILE
    @given(c=st.integers(-40, 40), s=st.floats(0.5, 100), th=st.floats(0, 0.5), w=st.floats(0, 1), intra=st.booleans())
    def test_decoded_value_is_inside_and_torch_agrees(self, c, s, th, w, intra):
        m = T.IntervalModel(theta_intra=th, theta_inter=th / 2, widen_out=w)
        cc = np.array([c * s])
        lo, hi = T.intervals(cc, np.array([s]), m, intra=np.array([intra]))
        assert lo[0] <= cc[0] <= hi[0]
        tlo, thi = T.intervals(torch.tensor(cc), torch.tensor([s], dtype=torch.float64), m,
                               intra=torch.tensor([intra]))
        assert np.allclose([tlo.item(), thi.item()], [lo[0], hi[0]])

    def test_plane_steps_fill_dc_positions(self):
        tk = np.full((4, 4), 3, np.uint8)  # one intra 16x16 MB
        luma, chroma = T.h264_layouts(tk, np.zeros((4, 4), np.uint8), np.full((4, 4), 16, np.uint8))
        qstep = np.full((16, 16), 20.0, np.float32)
        qstep[::4, ::4] = 0
        dc_qmul = np.array([[[2560, 1280, 640]]])
        s = T.h264_plane_steps(qstep, dc_qmul, luma, "y")
        assert np.all(s[::4, ::4] == 10.0) and s[1, 1] == 20
        sc = T.h264_plane_steps(np.zeros((8, 8)), dc_qmul, chroma, "v")
        assert np.all(sc[::4, ::4] == 5.0) and s.sum() > 0
        assert np.array_equal(T.h264_plane_steps(qstep, None, luma, "y"), qstep)
        with pytest.raises(ValueError, match="plane"):
            T.h264_plane_steps(qstep, dc_qmul, luma, "q")


class TestPlans:
    """The compiled per-layout plans behind the plane transforms (pycodec.transform.plan)."""

    def test_cached_by_content_and_shared_by_numpy_and_torch(self):
        from pycodec.transform import plan as P

        luma, _ = T.h264_layouts(*random_h264_maps(np.random.default_rng(9), 2, 2))
        p1 = P.get_plan(luma, 32, 32)
        assert P.get_plan(luma.map(np.copy), 32, 32) is p1  # same content, new arrays
        assert P.get_plan(luma.to_torch(), 32, 32) is p1
        assert P.get_plan(luma, 29, 32) is not p1  # another plane size
        # a permutation that covers every sample once, FREE cells last
        assert np.array_equal(np.sort(p1.perm), np.arange(p1.size))
        x = np.random.default_rng(0).normal(size=(32, 32))
        assert np.array_equal(p1.scatter(p1.gather(x), ()), x)

    def test_cache_is_bounded_by_bytes(self, monkeypatch):
        """Every frame of a long video can have its own layout: the cache must not grow with them
        (a 1080p plan is ~130 MB), and the plan just made always stays."""
        from pycodec.transform import plan as P

        P.clear_cache()
        rng = np.random.default_rng(3)
        first = P.get_plan(T.h264_layouts(*random_h264_maps(rng, 4, 4))[0], 64, 64)
        monkeypatch.setattr(P, "_CACHE_BYTES", 3 * first.nbytes)
        plans = [P.get_plan(T.h264_layouts(*random_h264_maps(rng, 4, 4))[0], 64, 64) for _ in range(20)]
        assert 1 <= len(P._plans) <= 3 and P._plans[next(reversed(P._plans))] is plans[-1]
        assert sum(p.nbytes for p in P._plans.values()) <= 3 * first.nbytes
        monkeypatch.setattr(P, "_CACHE_BYTES", 1)  # smaller than any plan: the newest still stays
        last = P.get_plan(T.h264_layouts(*random_h264_maps(rng, 4, 4))[0], 64, 64)
        assert list(P._plans.values()) == [last]
        P.clear_cache()

    def test_inconsistent_layout_is_refused(self):
        luma, _ = T.h264_layouts(np.full((4, 4), 2, np.uint8), np.ones((4, 4), np.uint8), np.full((4, 4), 16, np.uint8))
        bad = luma.map(np.copy)
        bad.log2[0, 1] = 2  # one 4x4 cell inside an 8x8 transform block
        with pytest.raises(ValueError, match="inconsistent layout"):
            T.plane_forward(np.zeros((16, 16)), bad)

    @pytest.mark.parametrize("device", DEVICES)
    def test_broadcast_layout_over_planes_and_ragged_edge(self, device):
        rng = np.random.default_rng(12)
        luma, _ = T.h264_layouts(*random_h264_maps(rng, 2, 2))
        x = rng.normal(0, 30, (3, 32, 32))
        c = T.plane_forward(x, luma)  # one layout for a stack of planes
        for i in range(3):
            assert np.allclose(c[i], loop_forward_h264(x[i], luma), atol=1e-9)
        t = T.plane_forward(torch.tensor(x, device=device), luma.to_torch(device))
        assert t.device.type == device and np.allclose(t.cpu().numpy(), c, atol=1e-9)
        # a plane that ends inside its last blocks is zero-padded to whole blocks
        lay8, _ = T.hevc_layouts(np.full((4, 6), 6), np.full((4, 6), 3), np.ones((4, 6)))
        y = rng.normal(0, 30, (14, 22))
        yp = np.pad(y, ((0, 2), (0, 2)))
        assert np.allclose(T.plane_forward(y, lay8), T.plane_forward(yp, lay8)[:14, :22], atol=1e-9)
        assert np.allclose(T.plane_forward(yp, lay8)[:8, :8], T.hevc_forward(yp[:8, :8]), atol=1e-9)


class TestFlipCoefficients:
    """pycodec.transform.flip_coefficients: coefficient images mirrored with their residual."""

    @PROFILE
    @given(seed=st.integers(0, 2**31 - 1), axis=st.sampled_from([-1, -2]))
    def test_h264_exact_and_dc_levels_follow_the_hadamard_domain(self, seed, axis):
        rng = np.random.default_rng(seed)
        luma, chroma = T.h264_layouts(*random_h264_maps(rng, 2, 3, force_pcm=True))
        for lay, shape in ((luma, (32, 48)), (chroma, (16, 24))):
            c = rng.integers(-500, 500, shape)
            f = T.flip_coefficients(c, lay, axis, "coeffs")
            flay = lay.map(lambda m: np.flip(m, axis))
            g0, g1 = T.plane_inverse(c, lay, dc_domain=False), T.plane_inverse(f, flay, dc_domain=False)
            assert np.allclose(g1, np.flip(g0, axis), atol=1e-9, rtol=0)
            assert np.array_equal(T.flip_coefficients(f, flay, axis, "coeffs"), c)  # an involution
            # 'levels' at the DC positions of DC-path blocks live in the Hadamard domain: flipping the
            # Hadamard-domain image as levels == the Hadamard domain of the flipped coefficients
            z = T.to_dc_domain(c, lay)
            dcpos = np.zeros(shape, bool)
            dcpos[::4, ::4] = flay.dc > 0
            zf = T.flip_coefficients(np.rint(z * 64).astype(np.int64), lay, axis, "levels") / 64
            assert np.allclose(zf[dcpos], T.to_dc_domain(f, flay)[dcpos], atol=1e-9)
            q = rng.uniform(1, 9, shape)
            qf = T.flip_coefficients(q, lay, axis, "qstep")
            assert np.array_equal(np.sort(qf, axis=None), np.sort(q, axis=None))  # moved, not changed

    @PROFILE
    @given(seed=st.integers(0, 2**31 - 1), axis=st.sampled_from([-1, -2]))
    def test_hevc_parity_skip_and_dst(self, seed, axis):
        rng = np.random.default_rng(seed)
        tk, lg, mode = random_hevc_maps(rng, 1, 2)
        lay, _ = T.hevc_layouts(tk, lg, mode)
        c = rng.integers(-3000, 3000, (32, 64))
        f = T.flip_coefficients(c, lay, axis, "coeffs")
        flay = lay.map(lambda m: np.flip(m, axis))
        g0, g1 = T.plane_inverse(c, lay), T.plane_inverse(f, flay)
        dst = np.repeat(np.repeat(flay.family == LY.HEVC_DST, 4, 0), 4, 1)
        assert np.allclose(g1[~dst], np.flip(g0, axis)[~dst], atol=1e-9, rtol=0)
        assert np.abs(g1[dst] - np.flip(g0, axis)[dst]).max(initial=0) <= 0.06  # rounded, not exact
        for fld in ("levels", "qstep"):
            x = T.flip_coefficients(np.ones((32, 64)), lay, axis, fld)
            assert np.all(x[dst] == 0) and np.all(np.abs(x[~dst]) == 1)  # DST blocks become unconstrained
            assert np.all(x >= 0) == (fld == "qstep")  # levels take the parity signs, steps do not

    def test_bad_input(self):
        luma, _ = T.h264_layouts(*random_h264_maps(np.random.default_rng(0), 1, 1))
        with pytest.raises(ValueError, match="field"):
            T.flip_coefficients(np.zeros((16, 16)), luma, -1, "residual")
        with pytest.raises(ValueError, match="axis"):
            T.flip_coefficients(np.zeros((16, 16)), luma, 0, "coeffs")
        with pytest.raises(ValueError, match="cells"):
            T.flip_coefficients(np.zeros((16, 20)), luma, -1, "coeffs")
        lay8, _ = T.hevc_layouts(np.full((2, 4), 6), np.full((2, 4), 3), np.ones((2, 4)))
        with pytest.raises(ValueError, match="crosses the image edge"):  # an 8x8 block cut by the window
            T.flip_coefficients(np.zeros((8, 12)), lay8.map(lambda m: m[..., :3]), -1, "coeffs")
