"""Affine Moving Least Squares warp of Keyframes-GAN (models.md 2.2; Schaefer et al. 2006, affine,
alpha = 1): the reference keyframe is warped backwards so that its landmarks land on the degraded
frame's landmarks.  Plain torch, vectorised over pixels and control points, differentiable."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# A per-pixel 2x2 moment matrix with |det| <= SINGULAR_RTOL * eps(dtype) * trace^2 is treated as
# singular (trace^2 >= 4 det for these PSD matrices, so det / trace^2 is a scale-free 1 / condition).
SINGULAR_RTOL = 100.0


def _points(src_points: Tensor, dst_points: Tensor,
            fallback: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Checked control points (B, N, 2), N >= 3, in their common floating dtype (integer points,
    e.g. straight from dlib, become ``fallback`` or the default dtype)."""
    if not isinstance(src_points, Tensor) or not isinstance(dst_points, Tensor):
        raise TypeError(f"points must be tensors, got {type(src_points).__name__}, {type(dst_points).__name__}")
    if src_points.dim() != 3 or src_points.shape[-1] != 2:
        raise ValueError(f"src_points must be (B, N, 2), got {tuple(src_points.shape)}")
    if dst_points.shape != src_points.shape:
        raise ValueError(f"dst_points {tuple(dst_points.shape)} must match src_points {tuple(src_points.shape)}")
    if src_points.shape[1] < 3:
        raise ValueError(f"an affine MLS warp needs N >= 3 control points, got {src_points.shape[1]}")
    dt = torch.promote_types(src_points.dtype, dst_points.dtype)
    if not dt.is_floating_point:
        dt = fallback or torch.get_default_dtype()
    return src_points.to(dt), dst_points.to(dt)


def mls_affine_grid(src_points: Tensor, dst_points: Tensor, height: int, width: int,
                    eps: float = 1e-8) -> Tensor:
    """Absolute sampling positions u (B, H, W, 2), as (x, y) pixels, of the affine MLS map that
    takes ``src_points`` p (B, N, 2) to ``dst_points`` q, evaluated at every pixel centre v = (x, y)
    (integer coordinates): w_i = 1 / (|p_i - v|^2 + eps), p*, q* the weighted centroids,
    M = (sum w p^T p^)^-1 sum w p^T q^ and u = (v - p*) M + q*, with p^ = p - p*, q^ = q - q*.
    Where the 2x2 moment matrix is singular (e.g. collinear p) u = v - p* + q* (a translation)."""
    p, q = _points(src_points, dst_points)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height and width must be >= 1, got {height}, {width}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    b, n, _ = p.shape
    dt, dev = p.dtype, p.device
    vx = torch.arange(int(width), dtype=dt, device=dev).view(1, 1, 1, -1)
    vy = torch.arange(int(height), dtype=dt, device=dev).view(1, 1, -1, 1)
    px, py = p[..., 0].view(b, n, 1, 1), p[..., 1].view(b, n, 1, 1)
    qx, qy = q[..., 0].view(b, n, 1, 1), q[..., 1].view(b, n, 1, 1)

    w = 1.0 / ((px - vx) ** 2 + (py - vy) ** 2 + eps)  # (B, N, H, W)
    wsum = w.sum(1)

    def centroid(z: Tensor) -> Tensor:  # sum_i w_i z_i / sum_i w_i, (B, H, W); z (B, N)
        return torch.einsum("bnhw,bn->bhw", w, z) / wsum

    psx, psy, qsx, qsy = centroid(p[..., 0]), centroid(p[..., 1]), centroid(q[..., 0]), centroid(q[..., 1])
    # centred coordinates, not raw second moments: near a control point w ~ 1/eps and the raw
    # moments would cancel catastrophically
    phx, phy = px - psx.unsqueeze(1), py - psy.unsqueeze(1)
    qhx, qhy = qx - qsx.unsqueeze(1), qy - qsy.unsqueeze(1)
    wpx, wpy = w * phx, w * phy
    a, bb, c = (wpx * phx).sum(1), (wpx * phy).sum(1), (wpy * phy).sum(1)  # sum w p^T p^ = [[a, bb], [bb, c]]
    mxx, mxy = (wpx * qhx).sum(1), (wpx * qhy).sum(1)  # sum w p^T q^ (rows x, y of p^)
    myx, myy = (wpy * qhx).sum(1), (wpy * qhy).sum(1)

    sx, sy = vx[:, 0] - psx, vy[:, 0] - psy  # v - p*
    det = a * c - bb * bb
    singular = det.abs() <= SINGULAR_RTOL * torch.finfo(dt).eps * (a + c) ** 2
    det = torch.where(singular, torch.ones_like(det), det)  # keeps the unused branch (and its grad) finite
    rx = (c * sx - bb * sy) / det  # r = s A^-1 (A symmetric)
    ry = (a * sy - bb * sx) / det
    ux = torch.where(singular, sx, rx * mxx + ry * myx) + qsx
    uy = torch.where(singular, sy, rx * mxy + ry * myy) + qsy
    return torch.stack((ux, uy), -1)


def mls_warp(image: Tensor, src_points: Tensor, dst_points: Tensor, eps: float = 1e-8) -> Tensor:
    """Backward affine MLS warp of ``image`` (B, C, H, W), the reference, so that its points
    ``dst_points`` (B, N, 2) land on ``src_points`` (the degraded frame's): bilinear sampling at
    :func:`mls_affine_grid`, border padding.  x is normalised with W - 1 and y with H - 1, each
    separately (the authors' release clamps columns with the row count)."""
    if not isinstance(image, Tensor) or image.dim() != 4:
        raise ValueError(f"image must be a (B, C, H, W) tensor, got {getattr(image, 'shape', type(image))}")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point, got {image.dtype}")
    b, _, h, w = image.shape
    p, q = _points(src_points, dst_points, fallback=image.dtype)
    if p.shape[0] != b:
        raise ValueError(f"points batch {p.shape[0]} must match the image batch {b}")
    u = mls_affine_grid(p, q, h, w, eps)
    # align_corners=True: pixel i sits at 2 i / (size - 1) - 1; a size of 1 maps every position to it
    gx = u[..., 0] * (2.0 / max(w - 1, 1)) - 1.0
    gy = u[..., 1] * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), -1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
