"""pycodec.models.mls: the affine MLS warp of Keyframes-GAN (models.md 2.2) against an independent
per-pixel numpy solve, exact reproduction of affine maps, the singular (collinear) fallback, x vs y
on non-square images, gradcheck, and dtypes/devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pycodec.models.mls import mls_affine_grid, mls_warp

DTYPES = [torch.float32, torch.float64]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from a second thread, and the machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def naive_mls(p: np.ndarray, q: np.ndarray, h: int, w: int, eps: float = 1e-8) -> np.ndarray:
    """Affine MLS by definition, one pixel at a time with a 2x2 solve: (H, W, 2) positions (x, y)."""
    out = np.zeros((h, w, 2))
    for y in range(h):
        for x in range(w):
            v = np.array([x, y], dtype=np.float64)
            wt = 1.0 / (((p - v) ** 2).sum(1) + eps)
            ps, qs = wt @ p / wt.sum(), wt @ q / wt.sum()
            ph, qh = p - ps, q - qs
            m = np.linalg.solve((ph * wt[:, None]).T @ ph, (ph * wt[:, None]).T @ qh)
            out[y, x] = (v - ps) @ m + qs
    return out


def pixel_grid(h: int, w: int, dtype=torch.float64) -> torch.Tensor:
    """(H, W, 2) pixel centres as (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return torch.stack((xs, ys), -1)


def rand_points(b: int, n: int, h: int, w: int, seed: int = 0, margin: float = 0.0) -> torch.Tensor:
    """(B, N, 2) float64 points (x, y) uniform in [-margin, W-1+margin] x [-margin, H-1+margin]."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(b, n, 2, generator=g, dtype=torch.float64)
    scale = torch.tensor([w - 1 + 2 * margin, h - 1 + 2 * margin], dtype=torch.float64)
    return u * scale - margin


def off_centre_points(b: int, n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(B, N, 2) distinct points kept 0.3-0.7 px away from the pixel centres (smooth weights, so
    finite differences stay accurate)."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.stack([torch.randperm((h - 1) * (w - 1), generator=g)[:n] for _ in range(b)])
    frac = 0.3 + 0.4 * torch.rand(b, n, 2, generator=g, dtype=torch.float64)
    return torch.stack(((cells % (w - 1)).double(), (cells // (w - 1)).double()), -1) + frac


def random_affine(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A well-conditioned 2x2 matrix near a rotation-scale and a translation."""
    g = torch.Generator().manual_seed(seed)
    th = float(torch.rand(1, generator=g)) - 0.5
    rot = torch.tensor([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]], dtype=torch.float64)
    a = rot @ (torch.eye(2, dtype=torch.float64) + 0.15 * torch.randn(2, 2, generator=g, dtype=torch.float64))
    return a, 2.0 * torch.randn(2, generator=g, dtype=torch.float64)


class TestMlsAffineGrid:
    def test_smoke(self):
        p = rand_points(2, 7, 9, 11)
        q = p + 0.5
        u = mls_affine_grid(p, q, 9, 11)
        assert u.shape == (2, 9, 11, 2) and u.dtype == torch.float64
        assert torch.isfinite(u).all()

    def test_batch_items_are_independent(self):
        p, q = rand_points(2, 9, 6, 8, seed=1), rand_points(2, 9, 6, 8, seed=2)
        u = mls_affine_grid(p, q, 6, 8)
        for i in range(2):
            torch.testing.assert_close(u[i:i + 1], mls_affine_grid(p[i:i + 1], q[i:i + 1], 6, 8), rtol=0, atol=1e-12)

    def test_identity(self):
        p = rand_points(2, 68, 12, 17, seed=3, margin=2.0)
        u = mls_affine_grid(p, p.clone(), 12, 17)
        torch.testing.assert_close(u, pixel_grid(12, 17).expand(2, -1, -1, -1), rtol=0, atol=1e-9)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_reproduces_affine_maps_exactly(self, seed):
        a, t = random_affine(seed)
        p = rand_points(2, 11, 10, 14, seed=seed + 10)
        q = p @ a.T + t
        u = mls_affine_grid(p, q, 10, 14)
        torch.testing.assert_close(u, (pixel_grid(10, 14) @ a.T + t).expand(2, -1, -1, -1), rtol=0, atol=1e-6)

    @pytest.mark.parametrize("seed", [0, 1])
    def test_against_naive_per_pixel_solve(self, seed):
        h, w = 12, 17
        p = rand_points(2, 68, h, w, seed=seed, margin=1.0)
        q = p + 1.5 * torch.randn(2, 68, 2, generator=torch.Generator().manual_seed(seed + 100), dtype=torch.float64)
        u = mls_affine_grid(p, q, h, w).numpy()
        for i in range(2):
            np.testing.assert_allclose(u[i], naive_mls(p[i].numpy(), q[i].numpy(), h, w), rtol=0, atol=1e-9)

    def test_control_points_interpolate(self):
        """A pixel centre on p_i maps (up to eps) to q_i: MLS interpolates its control points."""
        p = torch.tensor([[[1.0, 1.0], [6.0, 2.0], [3.0, 5.0], [8.0, 6.0], [2.0, 7.0]]], dtype=torch.float64)
        q = p + torch.tensor([[[0.5, -0.3], [1.0, 0.2], [-0.7, 0.4], [0.3, 0.9], [0.0, -1.1]]], dtype=torch.float64)
        u = mls_affine_grid(p, q, 9, 10)
        at = u[0, p[0, :, 1].long(), p[0, :, 0].long()]
        torch.testing.assert_close(at, q[0], rtol=0, atol=1e-6)

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("slope", [0.0, 0.37])
    def test_collinear_points_fall_back_to_a_translation(self, dtype, slope):
        x = torch.tensor([0.5, 2.0, 3.5, 5.2, 7.9, 9.1], dtype=torch.float64)
        p = torch.stack((x, slope * x + 2.3), -1)[None]
        q = rand_points(1, 6, 8, 11, seed=5)
        u = mls_affine_grid(p.to(dtype), q.to(dtype), 8, 11)
        assert torch.isfinite(u).all()
        v = pixel_grid(8, 11)
        wt = 1.0 / ((p[0, :, None, None, :] - v) ** 2).sum(-1).add(1e-8)  # (N, H, W)
        ps = (wt[..., None] * p[0, :, None, None, :]).sum(0) / wt.sum(0)[..., None]
        qs = (wt[..., None] * q[0, :, None, None, :]).sum(0) / wt.sum(0)[..., None]
        tol = 1e-9 if dtype == torch.float64 else 1e-4
        torch.testing.assert_close(u[0].double(), v - ps + qs, rtol=0, atol=tol)

    def test_gradcheck(self):
        p = off_centre_points(2, 5, 6, 7, seed=1).requires_grad_()
        q = (p.detach() + 0.4 * torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(2),
                                            dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: mls_affine_grid(a, b, 6, 7), (p, q))

    def test_integer_points(self):
        p = torch.tensor([[[0, 0], [5, 1], [2, 4], [6, 5]]])
        u = mls_affine_grid(p, p + 1, 6, 7)
        assert u.dtype == torch.get_default_dtype()
        torch.testing.assert_close(u, pixel_grid(6, 7, u.dtype)[None] + 1, rtol=0, atol=1e-4)

    @pytest.mark.parametrize("src, dst", [
        ((2, 5, 2), (1, 5, 2)),  # batch
        ((1, 5, 2), (1, 6, 2)),  # number of points
        ((1, 2, 2), (1, 2, 2)),  # N < 3
        ((1, 5, 3), (1, 5, 3)),  # last dim
        ((5, 2), (5, 2)),  # no batch dim
    ])
    def test_bad_shapes(self, src, dst):
        with pytest.raises(ValueError):
            mls_affine_grid(torch.rand(*src), torch.rand(*dst), 6, 7)

    def test_bad_arguments(self):
        p = torch.rand(1, 5, 2)
        with pytest.raises(TypeError):
            mls_affine_grid(p.numpy(), p, 6, 7)
        with pytest.raises(ValueError):
            mls_affine_grid(p, p, 0, 7)
        with pytest.raises(ValueError):
            mls_affine_grid(p, p, 6, 7, eps=0.0)

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_device_dtype(self, device, dtype):
        p = rand_points(2, 68, 16, 20, seed=7)
        q = p + torch.randn(2, 68, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
        ref = mls_affine_grid(p, q, 16, 20)
        u = mls_affine_grid(p.to(device, dtype), q.to(device, dtype), 16, 20)
        assert u.dtype == dtype and u.device.type == device
        tol = 1e-9 if dtype == torch.float64 else 2e-3
        torch.testing.assert_close(u.cpu().double(), ref, rtol=0, atol=tol)


class TestMlsWarp:
    def test_smoke(self):
        img = torch.rand(2, 3, 9, 12, dtype=torch.float64)
        p = rand_points(2, 8, 9, 12)
        out = mls_warp(img, p, p + 0.3)
        assert out.shape == img.shape and out.dtype == img.dtype and torch.isfinite(out).all()

    def test_identity(self):
        img = torch.rand(2, 3, 9, 12, dtype=torch.float64)
        p = rand_points(2, 10, 9, 12, seed=4)
        torch.testing.assert_close(mls_warp(img, p, p.clone()), img, rtol=0, atol=1e-9)

    @pytest.mark.parametrize("seed", [0, 1])
    def test_affine_image_under_affine_map(self, seed):
        """I(x, y) = a x + b y + c sampled at u = A v + t is a x' + b y' + c with (x', y') = u; bilinear
        interpolation reproduces affine functions, so this is exact wherever u is inside the picture."""
        h, w = 18, 23
        v = pixel_grid(h, w)
        coef = torch.tensor([[0.7, -0.4, 2.0], [-0.2, 1.3, -5.0]], dtype=torch.float64)  # two channels
        img = (v @ coef[:, :2].T + coef[:, 2]).permute(2, 0, 1)[None]  # (1, 2, H, W)
        a, t = random_affine(seed)
        a = 0.5 * (a + torch.eye(2, dtype=torch.float64))  # closer to the identity: a wide interior
        t = 0.5 * t
        p = rand_points(1, 9, h, w, seed=seed + 20)
        out = mls_warp(img, p, p @ a.T + t)
        u = v @ a.T + t
        inside = (u[..., 0] >= 0) & (u[..., 0] <= w - 1) & (u[..., 1] >= 0) & (u[..., 1] <= h - 1)
        assert inside.sum() > h * w // 2
        expected = (u @ coef[:, :2].T + coef[:, 2]).permute(2, 0, 1)[None]
        torch.testing.assert_close(out[..., inside], expected[..., inside], rtol=0, atol=1e-9)

    def test_x_translation_moves_columns_only(self):
        """Non-square (H < W): a pure x-shift moves content along columns, and positions past the
        right edge clamp to column W-1 (the release clamped x with H-1)."""
        h, w, s = 5, 12, 3
        img = torch.rand(1, 2, h, w, dtype=torch.float64)
        p = rand_points(1, 6, h, w, seed=9)
        out = mls_warp(img, p, p + torch.tensor([float(s), 0.0], dtype=torch.float64))
        torch.testing.assert_close(out[..., : w - s], img[..., s:], rtol=0, atol=1e-9)
        torch.testing.assert_close(out[..., w - s:], img[..., w - 1:].expand(-1, -1, -1, s), rtol=0, atol=1e-9)

    def test_y_translation_moves_rows_only(self):
        h, w, s = 12, 5, 2
        img = torch.rand(1, 2, h, w, dtype=torch.float64)
        p = rand_points(1, 6, h, w, seed=10)
        out = mls_warp(img, p, p + torch.tensor([0.0, float(s)], dtype=torch.float64))
        torch.testing.assert_close(out[..., : h - s, :], img[..., s:, :], rtol=0, atol=1e-9)
        torch.testing.assert_close(out[..., h - s:, :], img[..., h - 1:, :].expand(-1, -1, s, -1), rtol=0, atol=1e-9)

    def test_collinear_points_finite_values_and_gradients(self):
        x = torch.tensor([0.5, 2.0, 3.5, 5.2, 6.1], dtype=torch.float64)
        p = torch.stack((x, 0.5 * x + 1.2), -1)[None].requires_grad_()
        q = (p.detach() + 0.7).requires_grad_()
        img = torch.rand(1, 1, 6, 7, dtype=torch.float64, requires_grad=True)
        out = mls_warp(img, p, q)
        out.sum().backward()
        assert torch.isfinite(out).all()
        assert all(torch.isfinite(t.grad).all() for t in (p, q, img))

    def test_single_row_image(self):
        img = torch.arange(6, dtype=torch.float64).view(1, 1, 1, 6)
        p = torch.tensor([[[0.0, 0.0], [2.0, 0.5], [4.0, -0.5], [5.0, 0.2]]], dtype=torch.float64)
        out = mls_warp(img, p, p + torch.tensor([1.0, 0.0], dtype=torch.float64))
        torch.testing.assert_close(out, torch.tensor([[[[1.0, 2, 3, 4, 5, 5]]]], dtype=torch.float64),
                                   rtol=0, atol=1e-9)

    def test_gradcheck(self):
        g = torch.Generator().manual_seed(3)
        img = torch.rand(2, 2, 6, 7, generator=g, dtype=torch.float64).requires_grad_()
        p = off_centre_points(2, 5, 6, 7, seed=4).requires_grad_()
        q = (p.detach() + 0.3 * torch.randn(2, 5, 2, generator=g, dtype=torch.float64)).requires_grad_()
        assert torch.autograd.gradcheck(mls_warp, (img, p, q))

    def test_integer_points_take_the_image_dtype(self):
        img = torch.rand(1, 1, 6, 7, dtype=torch.float64)
        p = torch.tensor([[[0, 0], [5, 1], [2, 4], [6, 5]]])
        out = mls_warp(img, p, p)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, img, rtol=0, atol=1e-9)

    def test_bad_inputs(self):
        p = torch.rand(2, 5, 2)
        with pytest.raises(ValueError):
            mls_warp(torch.rand(2, 6, 7), p, p)  # not 4-D
        with pytest.raises(ValueError):
            mls_warp(torch.rand(3, 1, 6, 7), p, p)  # batch mismatch
        with pytest.raises(ValueError):
            mls_warp(torch.rand(2, 1, 6, 7), p, torch.rand(2, 4, 2))  # N mismatch
        with pytest.raises(ValueError):
            mls_warp(torch.rand(2, 1, 6, 7), p[:, :2], p[:, :2])  # N < 3
        with pytest.raises(TypeError):
            mls_warp(torch.zeros(2, 1, 6, 7, dtype=torch.uint8), p, p)

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_device_dtype(self, device, dtype):
        img = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        p = rand_points(2, 68, 16, 20, seed=6)
        q = p + torch.randn(2, 68, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        ref = mls_warp(img, p, q)
        out = mls_warp(img.to(device, dtype), p.to(device, dtype), q.to(device, dtype))
        assert out.dtype == dtype and out.device.type == device
        tol = 1e-9 if dtype == torch.float64 else 2e-3
        torch.testing.assert_close(out.cpu().double(), ref, rtol=0, atol=tol)
