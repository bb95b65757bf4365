"""MDVD-Net (Zhang & Wu; models.md section 1): multi-modal restoration of compressed talking-face
video from the decoded window, speech, facial landmarks and the codec's own data, with
back-projection into the bitstream's quantization intervals.

Works in the codec's YUV: the network sees 4:4:4 (chroma upsampled), predicts a residual over the
decoded frame t (``prebp`` = frame t + residual, 4:4:4), and back-projects each 4:2:0 plane in
pixel units.  CHOICE: the 4:2:0 planes are frame t's own decoded planes plus the 2x2-averaged
residual (averaging ``prebp`` itself would also blur the decoded chroma by the upsample/average
round trip, so an untrained model would not be the identity); without ``MDVDInputs.decoded`` the
4:4:4 output is averaged as in the spec.  Every branch can be switched off (Table 1 ablations,
:meth:`MDVDConfig.table1_row`), and the trunk can run on pixel-unshuffled input (models.md 4) for
CPU-sized variants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pycodec.nn import BackProjection, chroma_downsample, warp

from .blocks import (
    DeformConv2d,
    MapConv,
    UpResBlock,
    conv3,
    he_init,
    lrelu,
    pixel_shuffle,
    pixel_unshuffle,
    res_stack,
    zero_init,
)
from .inputs import PLANES, BPData, MDVDInputs
from .landmarks import N_POINTS, LandmarkCorrector

SIZES = ("paper", "compact", "realtime")
LANDMARK_MODES = ("none", "raw", "corrected")
ALIGN_MODES = ("dcn", "warp")
SWITCHES = ("neighbours", "use_mv", "use_speech", "landmarks", "use_saf", "codec_branch", "back_projection",
            "loss_on_prebp")
# Table 1 (models.md 1.5) as switch values; row 0 = the single-frame CNN baseline
_TABLE1: dict[int, dict[str, Any]] = {
    0: {"neighbours": False, "use_mv": False, "use_speech": False, "landmarks": "none", "use_saf": False},
    1: {"use_mv": False, "use_speech": False, "landmarks": "none", "use_saf": False},
    2: {"use_speech": False, "landmarks": "none", "use_saf": False},
    3: {"landmarks": "none", "use_saf": False},
    4: {"landmarks": "raw", "use_saf": False},
    5: {"landmarks": "raw", "use_saf": True},
    6: {"landmarks": "corrected", "use_saf": False},
    7: {"landmarks": "corrected", "use_saf": True},
    8: {},
}
TABLE1_NAMES = {0: "single-frame CNN", 1: "VPB", 2: "+MV", 3: "+SPB (concat)", 4: "+FLWOC", 5: "+FLWOC +SAF",
                6: "+FLWC", 7: "+FLWC +SAF", 8: "+FLWC +SAF +VCI (full)"}


@dataclass
class MDVDConfig:
    """Sizes and ablation switches of :class:`MDVDNet`; the defaults are the paper's full model.

    Sizes: ``channels`` C; ``unshuffle`` pixel-unshuffle factor of the trunk input (1 paper, 2/4 for
    CPU variants); ``stem_kernel`` of the first conv of the frame, landmark and codec branches (3;
    1 is a patch embedding of the unshuffled cells); ``frame_blocks`` ResBlocks of the shared frame features; ``v_blocks`` of the
    V-subnet; A-subnet ``Linear -> (C, a_base, a_base) -> a_blocks UpResBlocks``, a map of the whole
    ``frame_size`` frame that each sample reads at its ``origin``; ``l_blocks``/``c_blocks`` of the
    L-/C-subnets; UNet ``unet_levels`` (widths C, 2C, 4C, ...) with ``unet_blocks`` per level;
    ``deform_groups`` of the alignment; speech BiLSTM ``lstm_layers`` x ``lstm_hidden``;
    ``mfcc_dim`` per video frame (4 steps x 13) over ``speech_window`` frames; heatmap
    ``landmark_sigma`` in pixels.  ``align``: 'dcn' (MV-guided deformable alignment of features,
    paper) or 'warp' (neighbour frames backward-warped by the MV field, no learned offsets: cheap);
    ``mv_base_offsets``: dcn offsets = MV field + learned correction (else learned from [F_t, F_n,
    MV] only, paper).

    Switches: ``neighbours`` (False: single frame t, no alignment), ``use_mv``, ``use_speech``,
    ``landmarks`` ('none' | 'raw' | 'corrected'), ``use_saf`` (False: conv over the plain concat),
    ``codec_branch`` (C-subnet over [P, E, TU, QP]), ``back_projection``, ``loss_on_prebp``."""

    channels: int = 64
    unshuffle: int = 1
    stem_kernel: int = 3
    frame_blocks: int = 5
    v_blocks: int = 10
    a_base: int = 8
    a_blocks: int = 5
    l_blocks: int = 4
    c_blocks: int = 4
    unet_levels: int = 3
    unet_blocks: int = 2
    deform_groups: int = 8
    lstm_hidden: int = 128
    lstm_layers: int = 3
    mfcc_dim: int = 52
    speech_window: int = 21
    frame_size: int = 256
    landmark_sigma: float = 2.0
    align: str = "dcn"
    mv_base_offsets: bool = False
    neighbours: bool = True
    use_mv: bool = True
    use_speech: bool = True
    landmarks: str = "corrected"
    use_saf: bool = True
    codec_branch: bool = True
    back_projection: bool = True
    loss_on_prebp: bool = False

    def __post_init__(self) -> None:
        pos = ("channels", "unshuffle", "unet_levels", "deform_groups", "lstm_hidden", "lstm_layers", "mfcc_dim",
               "speech_window", "frame_size", "a_base")
        for name in pos:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"MDVDConfig.{name} must be a positive int, got {v!r}")
        for name in ("frame_blocks", "v_blocks", "a_blocks", "l_blocks", "c_blocks", "unet_blocks"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"MDVDConfig.{name} must be an int >= 0, got {v!r}")
        for name in ("neighbours", "use_mv", "use_speech", "use_saf", "codec_branch", "back_projection",
                     "loss_on_prebp", "mv_base_offsets"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MDVDConfig.{name} must be true or false, got {getattr(self, name)!r}")  # noqa: TRY004
        if self.landmarks not in LANDMARK_MODES:
            raise ValueError(f"MDVDConfig.landmarks must be one of {LANDMARK_MODES}, got {self.landmarks!r}")
        if self.align not in ALIGN_MODES:
            raise ValueError(f"MDVDConfig.align must be one of {ALIGN_MODES}, got {self.align!r}")
        if self.stem_kernel not in (1, 3, 5):
            raise ValueError(f"MDVDConfig.stem_kernel must be 1, 3 or 5, got {self.stem_kernel!r}")
        if self.channels % self.deform_groups:
            raise ValueError(f"MDVDConfig.channels ({self.channels}) must be divisible by deform_groups "
                             f"({self.deform_groups})")
        if self.use_mv and not self.neighbours:
            raise ValueError("MDVDConfig.use_mv needs neighbours=True (motion vectors point to the neighbours)")
        if not self.landmark_sigma > 0:
            raise ValueError(f"MDVDConfig.landmark_sigma must be > 0, got {self.landmark_sigma!r}")

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> MDVDConfig:
        """'paper' (the spec: C=64 at full resolution, 31.4M parameters), 'compact' (C=32, trunk at
        half resolution, MV-initialised deformable offsets, smaller speech LSTM: a batch of 8 96x96
        patches trains in ~1.1 s on 2 CPU cores) or 'realtime' (C=32 at quarter resolution,
        neighbours backward-warped by their MV fields instead of deformable alignment, 1x1 stems,
        shallow V-subnet and 2-level UNet: ~27 frames/s at 256x256 on 2 cores, every branch kept).
        ``overrides``: any config field."""
        if name == "paper":
            cfg = cls()
        elif name == "compact":
            cfg = cls(channels=32, unshuffle=2, frame_blocks=2, v_blocks=4, a_base=4, a_blocks=3, l_blocks=2,
                      c_blocks=2, unet_levels=3, unet_blocks=1, deform_groups=4, lstm_hidden=64, lstm_layers=2,
                      mv_base_offsets=True)
        elif name == "realtime":
            cfg = cls(channels=32, unshuffle=4, stem_kernel=1, frame_blocks=0, v_blocks=1, a_base=4, a_blocks=2,
                      l_blocks=0, c_blocks=0, unet_levels=2, unet_blocks=1, deform_groups=4, lstm_hidden=64,
                      lstm_layers=2, align="warp")
        else:
            raise ValueError(f"unknown MDVD-Net size {name!r}; choose one of {SIZES}")
        return replace(cfg, **overrides) if overrides else cfg

    @classmethod
    def table1_row(cls, row: int, size: str = "compact") -> MDVDConfig:
        """The ablation of Table 1 row ``row`` (1 VPB ... 8 full; 0 = single-frame CNN baseline) at
        ``size``; rows 1-7 have neither the C-subnet nor back-projection (VCI).  At 'realtime'
        (``align='warp'``) rows without MVs fuse the neighbours unaligned."""
        if row not in _TABLE1:
            raise ValueError(f"Table 1 has rows 0..8 (0 = single-frame baseline), got {row!r}")
        sw: dict[str, Any] = {"codec_branch": row == 8, "back_projection": row == 8, **_TABLE1[row]}
        return cls.preset(size, **sw)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain types only (YAML/JSON friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MDVDConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are an error."""
        from .config_io import checked_mapping

        d = checked_mapping(cls, d, "MDVD-Net")
        if "landmark_sigma" in d and isinstance(d["landmark_sigma"], int) and not isinstance(d["landmark_sigma"], bool):
            d["landmark_sigma"] = float(d["landmark_sigma"])
        return cls(**d)

    @property
    def multiple(self) -> int:
        """Input sizes are padded (replicate) to a multiple of this."""
        return self.unshuffle * 2 ** (self.unet_levels - 1)


@dataclass
class MDVDOutput:
    """prebp (B, 3, H, W): YUV 4:4:4 before back-projection; planes: 'y' (B, H, W), 'u', 'v'
    (B, ceil(H/2), ceil(W/2)) after back-projection (or without it when off); prebp_planes: the
    same 4:2:0 planes before back-projection.  Values in [0, 1] when clamped (eval mode by
    default); unclamped in training so the loss keeps its gradients."""

    prebp: Tensor
    planes: dict[str, Tensor]
    prebp_planes: dict[str, Tensor] | None = None

    def clamped(self) -> MDVDOutput:
        pp = None if self.prebp_planes is None else {k: v.clamp(0, 1) for k, v in self.prebp_planes.items()}
        return MDVDOutput(self.prebp.clamp(0, 1), {k: v.clamp(0, 1) for k, v in self.planes.items()}, pp)


_BP = BackProjection()


def yuv444_to_planes(x: Tensor) -> dict[str, Tensor]:
    """(B, 3, H, W) YUV 4:4:4 -> planes 'y' (B, H, W), 'u', 'v' 2x2-averaged to 4:2:0."""
    return {"y": x[:, 0], "u": chroma_downsample(x[:, 1]), "v": chroma_downsample(x[:, 2])}


def apply_back_projection(planes: dict[str, Tensor], bp: BPData) -> dict[str, Tensor]:
    """Back-project planes in [0, 1] ('y' (B, h, w), 'u', 'v' at half size, display or crop size,
    matching ``bp.prediction``) into the quantization intervals of ``bp``; differentiable (a
    clamped coefficient passes no gradient).  Works in pixel units (x ``bp.peak``)."""
    out = {}
    for k in PLANES:
        if k not in planes:
            raise KeyError(f"planes has no {k!r}; expected 'y', 'u' and 'v'")
        r = planes[k] * bp.peak
        pred = bp.prediction[k].to(device=r.device, dtype=r.dtype)
        if r.shape != pred.shape:
            raise ValueError(f"plane {k!r} is {tuple(r.shape)} but its prediction is {tuple(pred.shape)}; "
                             "back-project at the prediction's size")
        sub = 1 if k == "y" else 2
        coeffs, steps, lay = bp.coeffs[k], bp.steps[k], bp.layouts[k]
        offs = (bp.offset // sub).tolist()
        if tuple(coeffs.shape[-2:]) == tuple(r.shape[-2:]) or all(o == offs[0] for o in offs):
            res = _BP(r, pred, coeffs, steps, lay, offs[0])
        else:  # samples at different display windows of their coded planes
            res = torch.cat([_BP(r[i:i + 1], pred[i:i + 1], coeffs[i:i + 1], steps[i:i + 1],
                                 lay.map(lambda m, i=i: m[i:i + 1]), offs[i]) for i in range(r.shape[0])])
        out[k] = res / bp.peak
    return out


def mdvd_loss(out: MDVDOutput, target: dict[str, Tensor], cfg: MDVDConfig | None = None) -> Tensor:
    """L1 over all YUV 4:2:0 samples (every sample of y, u and v counts once) of the output planes
    against ``target`` (:func:`pycodec.models.target_planes`); ``cfg.loss_on_prebp`` adds the same L1
    on the planes before back-projection."""
    def l1(planes: dict[str, Tensor]) -> Tensor:
        tot, n = 0.0, 0
        for k in PLANES:
            p, t = planes[k], target[k].to(planes[k].dtype)
            if p.shape != t.shape:
                raise ValueError(f"plane {k!r}: output {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
            tot = tot + (p - t).abs().sum()
            n += p.numel()
        return tot / n  # type: ignore[return-value]

    loss = l1(out.planes)
    if cfg is not None and cfg.loss_on_prebp:
        loss = loss + l1(out.prebp_planes if out.prebp_planes is not None else yuv444_to_planes(out.prebp))
    return loss


def landmark_heatmaps(lm: Tensor, size: tuple[int, int], sigma: float, scale: int = 1) -> Tensor:
    """(B, 68, h, w) Gaussian heatmaps of landmarks (B, 68, 2) (x, y in pixels, centres at
    integers) on a grid of ``scale`` x ``scale`` pixel cells (sigma in pixels)."""
    h, w = size
    c = (lm - (scale - 1) / 2) / scale  # in cells
    s = sigma / scale
    ys = torch.arange(h, device=lm.device, dtype=lm.dtype)
    xs = torch.arange(w, device=lm.device, dtype=lm.dtype)
    gy = torch.exp(-((ys.view(1, 1, h) - c[..., 1:2]) ** 2) / (2 * s * s))  # (B, 68, h)
    gx = torch.exp(-((xs.view(1, 1, w) - c[..., 0:1]) ** 2) / (2 * s * s))
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)


class _UNet(nn.Module):
    """conv3x3 -> levels of widths C*2^l (stride-2 conv down, bilinear + conv up, concatenated
    skips, ``blocks`` ResBlocks per level) -> zero-initialised conv3x3 to ``co`` (starts at 0)."""

    def __init__(self, ci: int, c: int, co: int, levels: int, blocks: int) -> None:
        super().__init__()
        widths = [c * 2 ** i for i in range(levels)]
        self.head = nn.Sequential(conv3(ci, c), lrelu())
        self.enc = nn.ModuleList(res_stack(wd, blocks) for wd in widths)
        self.down = nn.ModuleList(nn.Sequential(conv3(widths[i], widths[i + 1], stride=2), lrelu())
                                  for i in range(levels - 1))
        self.up = nn.ModuleList(nn.Sequential(conv3(widths[i + 1], widths[i]), lrelu()) for i in range(levels - 1))
        self.merge = nn.ModuleList(he_init(nn.Conv2d(2 * widths[i], widths[i], 1)) for i in range(levels - 1))
        self.dec = nn.ModuleList(res_stack(widths[i], blocks) for i in range(levels - 1))
        self.tail = zero_init(nn.Conv2d(c, co, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        skips = []
        for i, enc in enumerate(self.enc):
            h = enc(h)
            if i < len(self.down):
                skips.append(h)
                h = self.down[i](h)
        for i in reversed(range(len(self.up))):
            h = self.up[i](F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False))
            h = self.dec[i](self.merge[i](torch.cat([h, skips[i]], 1)))
        return self.tail(h)


class MDVDNet(nn.Module):
    """MDVD-Net (models.md 1.2); forward(x: MDVDInputs, clamp=None) -> MDVDOutput.

    Branches by ``cfg``: shared frame features; MV-guided deformable alignment of the 4 neighbours
    (zero-initialised offset head) + fusion + V-subnet; speech BiLSTM + A-subnet; landmark heatmaps
    (raw or corrected by a frozen :class:`LandmarkCorrector`) + L-subnet; spatial attention fusion
    (SAF); C-subnet over [P, E, TU, QP]; UNet reconstruction whose zero-initialised last layer
    makes the untrained output exactly the decoded frame t; back-projection when
    ``cfg.back_projection`` and ``x.bp`` is given.  Inputs of any size (padded by replication to
    ``cfg.multiple`` inside).  ``clamp`` (default: in eval mode) clamps the output to [0, 1]; the
    training loss sees unclamped values."""

    def __init__(self, cfg: MDVDConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or MDVDConfig()
        c, u = cfg.channels, cfg.unshuffle
        sk = cfg.stem_kernel
        self.feat = nn.Sequential(conv3(3 * u * u, c, k=sk), lrelu(), res_stack(c, cfg.frame_blocks))
        if cfg.neighbours:
            if cfg.align == "dcn":
                oc = 2 * cfg.deform_groups * 9
                self.offset_head = nn.Sequential(conv3(2 * c + (3 if cfg.use_mv else 0), c), lrelu(),
                                                 conv3(c, c), lrelu(), zero_init(nn.Conv2d(c, oc, 3, padding=1)))
                self.dcn = DeformConv2d(c, c, 3, cfg.deform_groups)
            self.fusion = he_init(nn.Conv2d(5 * c, c, 1))
        self.v_subnet = res_stack(c, cfg.v_blocks)
        n_extra = 0
        if cfg.use_speech:
            self.speech_lstm = nn.LSTM(cfg.mfcc_dim, cfg.lstm_hidden, num_layers=cfg.lstm_layers, batch_first=True,
                                       bidirectional=True)
            self.a_linear = he_init(nn.Linear(cfg.speech_window * 2 * cfg.lstm_hidden, c * cfg.a_base ** 2))
            self.a_subnet = nn.Sequential(*(UpResBlock(c, c) for _ in range(cfg.a_blocks)))
            n_extra += 1
            if cfg.use_saf:
                self.att_a = MapConv(2 * c, 7)
        if cfg.landmarks != "none":
            if cfg.landmarks == "corrected":
                self.corrector = LandmarkCorrector(cfg.mfcc_dim).freeze()
            self.l_subnet = nn.Sequential(conv3(N_POINTS, c, k=sk), lrelu(), res_stack(c, cfg.l_blocks))
            n_extra += 1
            if cfg.use_saf:
                self.att_l = MapConv(2 * c, 7)
        if n_extra:
            self.aggregate = nn.Sequential(conv3((1 + n_extra) * c, c), lrelu(), conv3(c, c))
        if cfg.codec_branch:
            self.c_subnet = nn.Sequential(conv3(9 * u * u, c, k=sk), lrelu(), res_stack(c, cfg.c_blocks))
        self.unet = _UNet(c * (2 if cfg.codec_branch else 1), c, 3 * u * u, cfg.unet_levels, cfg.unet_blocks)

    # ------------------------------------------------------------------ helpers
    @property
    def required_inputs(self) -> tuple[str, ...]:
        """The :class:`MDVDInputs` fields this configuration reads (besides ``frames``)."""
        cfg = self.cfg
        need = []
        if cfg.neighbours and cfg.use_mv:
            need.append("mv")
        if cfg.use_speech or cfg.landmarks == "corrected":
            need.append("mfcc")
        if cfg.landmarks != "none":
            need.append("landmarks")
        if cfg.codec_branch:
            need += ["pred", "resid", "tu", "qp"]
        return tuple(need)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters to optimise (the frozen landmark corrector excluded)."""
        return [p for p in self.parameters() if p.requires_grad]

    def load_corrector(self, state_dict: dict[str, Tensor]) -> None:
        """Load a pretrained :class:`LandmarkCorrector` state_dict (landmarks='corrected')."""
        if not hasattr(self, "corrector"):
            raise ValueError("this MDVD-Net has no landmark corrector (cfg.landmarks != 'corrected')")
        self.corrector.load_state_dict(state_dict)

    def _unshuffle(self, x: Tensor) -> Tensor:
        return pixel_unshuffle(x, self.cfg.unshuffle)

    def _trunk_mv(self, mv: Tensor) -> Tensor:
        """(N, 3, H, W) pixel field -> trunk resolution, displacements in trunk cells."""
        u = self.cfg.unshuffle
        if u == 1:
            return mv
        m = F.avg_pool2d(mv, u)
        return torch.cat([m[:, :2] / u, m[:, 2:]], 1)

    def _speech_map(self, x: MDVDInputs, size: tuple[int, int]) -> Tensor:
        """F_a at the trunk size: the A-subnet's map of the whole frame read at the sample's origin."""
        cfg = self.cfg
        hs, _ = self.speech_lstm(x.mfcc)
        a = self.a_linear(hs.flatten(1)).view(-1, cfg.channels, cfg.a_base, cfg.a_base)
        a = self.a_subnet(F.leaky_relu(a, 0.2))
        h, w = size
        if x.origin is None:
            return a if a.shape[-2:] == size else F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        u = cfg.unshuffle
        fs = cfg.frame_size / u  # the frame in trunk cells
        o = x.origin.to(a.dtype) / u
        ys = torch.arange(h, device=a.device, dtype=a.dtype).view(1, h) + o[:, :1]
        xs = torch.arange(w, device=a.device, dtype=a.dtype).view(1, w) + o[:, 1:]
        gy = ((2 * ys + 1) / fs - 1).unsqueeze(2).expand(-1, h, w)
        gx = ((2 * xs + 1) / fs - 1).unsqueeze(1).expand(-1, h, w)
        return F.grid_sample(a, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                             align_corners=False)

    def _check(self, x: MDVDInputs) -> None:
        if not isinstance(x, MDVDInputs):
            raise TypeError(f"MDVDNet takes MDVDInputs (pycodec.models.make_inputs), got {type(x).__name__}")
        missing = [n for n in self.required_inputs if getattr(x, n) is None]
        if missing:
            raise ValueError(f"this MDVD-Net configuration needs inputs {missing}; build them with make_inputs")
        if x.mfcc is not None and ("mfcc" in self.required_inputs) and \
                tuple(x.mfcc.shape[1:]) != (self.cfg.speech_window, self.cfg.mfcc_dim):
            raise ValueError(f"mfcc must be (B, {self.cfg.speech_window}, {self.cfg.mfcc_dim}), "
                             f"got {tuple(x.mfcc.shape)}")

    # ------------------------------------------------------------------ forward
    def forward(self, x: MDVDInputs, clamp: bool | None = None) -> MDVDOutput:
        self._check(x)
        cfg = self.cfg
        c, u = cfg.channels, cfg.unshuffle
        b, _, _, hh, ww = x.frames.shape
        m = cfg.multiple
        ph, pw = (-hh) % m, (-ww) % m

        def pad(t: Tensor) -> Tensor:
            return F.pad(t, (0, pw, 0, ph), mode="replicate") if (ph or pw) else t

        hp, wp = hh + ph, ww + pw
        h, w = hp // u, wp // u
        frames = pad(x.frames.flatten(1, 2)).view(b, 5, 3, hp, wp)

        # video: shared frame features, alignment of the neighbours, fusion, V-subnet
        if cfg.neighbours:
            nb = frames[:, [0, 1, 3, 4]]
            mv = pad(x.mv.flatten(1, 2)).view(b, 4, 3, hp, wp) if cfg.use_mv else None
            if cfg.align == "warp" and mv is not None:
                nb = warp(nb.flatten(0, 1), mv[:, :, :2].flatten(0, 1)).reshape(b, 4, 3, hp, wp)
            ft = self.feat(self._unshuffle(frames[:, 2]))  # shared weights; no 5-frame concat (a full-res copy)
            fn = self.feat(self._unshuffle(nb.flatten(0, 1)))  # (B*4, C, h, w)
            if cfg.align == "dcn":
                parts = [ft.unsqueeze(1).expand(b, 4, c, h, w).flatten(0, 1), fn]
                tmv = self._trunk_mv(mv.flatten(0, 1)) if mv is not None else None
                if tmv is not None:
                    parts.append(tmv)
                off = self.offset_head(torch.cat(parts, 1))
                if cfg.mv_base_offsets and tmv is not None:  # (dy, dx) of the MV field for every tap
                    base = torch.stack([tmv[:, 1], tmv[:, 0]], 1)
                    off = off + base.repeat(1, off.shape[1] // 2, 1, 1)
                fn = F.leaky_relu(self.dcn(fn, off), 0.2)
            fv = self.fusion(torch.cat([ft, fn.reshape(b, 4 * c, h, w)], 1))
        else:
            fv = self.feat(self._unshuffle(frames[:, 2]))
        fv = self.v_subnet(fv)

        # speech and landmarks, fused by spatial attention (or a plain concat)
        extra = []
        if cfg.use_speech:
            fa = self._speech_map(x, (h, w))
            extra.append(fa * torch.sigmoid(self.att_a(torch.cat([fv, fa], 1))) if cfg.use_saf else fa)
        if cfg.landmarks != "none":
            lm = x.landmarks.to(fv.dtype)
            if cfg.landmarks == "corrected":
                with torch.no_grad():
                    lm = self.corrector(x.mfcc.to(fv.dtype), lm)
            fl = self.l_subnet(landmark_heatmaps(lm, (h, w), cfg.landmark_sigma, u))
            extra.append(fl * torch.sigmoid(self.att_l(torch.cat([fv, fl], 1))) if cfg.use_saf else fl)
        f = self.aggregate(torch.cat([fv, *extra], 1)) if extra else fv

        # codec priors, reconstruction
        if cfg.codec_branch:
            prior = pad(torch.cat([x.pred, x.resid, x.tu, x.qp], 1).to(f.dtype))
            f = torch.cat([f, self.c_subnet(self._unshuffle(prior))], 1)
        r = self.unet(f)
        r = pixel_shuffle(r, u)
        r = r[..., :hh, :ww]
        prebp = x.frames[:, 2] + r
        if x.decoded_fits():  # the residual on frame t's own 4:2:0 planes (no chroma blur)
            rp = yuv444_to_planes(r)
            pre = {k: x.decoded[k].to(r.dtype) + rp[k] for k in PLANES}
        else:
            pre = yuv444_to_planes(prebp)
        planes = apply_back_projection(pre, x.bp) if cfg.back_projection and x.bp is not None else pre
        out = MDVDOutput(prebp, planes, pre)
        if clamp if clamp is not None else not self.training:
            out = out.clamped()
        return out
