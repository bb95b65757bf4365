"""Speech-driven landmark correction of MDVD-Net (models.md 1.2, "Landmark correction"): the
landmarks a detector finds on the decoded frame are noisy; a BiLSTM over the speech window and an
MLP predict the correction ``ΔL`` from the speech and the noisy shape.  Pretrained on its own
(:func:`landmark_loss` against the landmarks of the uncompressed frame), then frozen inside
MDVD-Net."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import he_init, zero_init

N_POINTS = 68
SCALE = 256.0  # coordinates are learned in units of the 256-pixel face crop


class LandmarkCorrector(nn.Module):
    """3-layer BiLSTM(hidden) over the MFCC window (B, T, D); the output at the centre step
    (T // 2) concatenated with ``L_dec / 256`` -> MLP (2*hidden + 136) - 256 - 256 - 136 with
    ReLU -> ``ΔL = x 256``.  forward(mfcc, lm_dec) -> corrected landmarks (B, 68, 2).

    The last linear layer starts at zero, so an untrained corrector returns ``lm_dec`` unchanged."""

    def __init__(self, mfcc_dim: int = 52, hidden: int = 128, layers: int = 3, mlp: int = 256) -> None:
        super().__init__()
        self.mfcc_dim, self.hidden = mfcc_dim, hidden
        self.lstm = nn.LSTM(mfcc_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.mlp = nn.Sequential(
            he_init(nn.Linear(2 * hidden + 2 * N_POINTS, mlp), a=0.0), nn.ReLU(),
            he_init(nn.Linear(mlp, mlp), a=0.0), nn.ReLU(),
            zero_init(nn.Linear(mlp, 2 * N_POINTS)),
        )

    def forward(self, mfcc: Tensor, lm_dec: Tensor) -> Tensor:
        if mfcc.dim() != 3 or mfcc.shape[-1] != self.mfcc_dim:
            raise ValueError(f"mfcc must be (B, T, {self.mfcc_dim}), got {tuple(mfcc.shape)}")
        if lm_dec.shape[1:] != (N_POINTS, 2) or lm_dec.shape[0] != mfcc.shape[0]:
            raise ValueError(f"lm_dec must be ({mfcc.shape[0]}, {N_POINTS}, 2), got {tuple(lm_dec.shape)}")
        h, _ = self.lstm(mfcc)
        centre = h[:, mfcc.shape[1] // 2]
        z = torch.cat([centre, lm_dec.flatten(1) / SCALE], 1)
        return lm_dec + self.mlp(z).view(-1, N_POINTS, 2) * SCALE

    def freeze(self) -> LandmarkCorrector:
        """No gradients, eval mode for good (MDVD-Net trains end to end except this module)."""
        self.requires_grad_(False)
        self.frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> LandmarkCorrector:
        return super().train(False if getattr(self, "frozen", False) else mode)


def landmark_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """MSE of (B, 68, 2) landmark coordinates in units of 256 pixels; ``valid`` (B,) bool/float
    masks samples without a usable ground truth (e.g. no face detected)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    err = ((pred - target) / SCALE).pow(2).flatten(1).mean(1)
    if valid is None:
        return err.mean()
    v = valid.to(err.dtype)
    return (err * v).sum() / v.sum().clamp_min(1.0)
