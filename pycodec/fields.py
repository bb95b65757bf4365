"""Field groups of schema pycodec/1, the export bits they need, and frame flags."""

from __future__ import annotations

import enum
from collections.abc import Iterable

# Export bits of the patched decoders' "export_internals" option (libavutil/codec_internals.h).
EXPORT_MV = 1 << 0
EXPORT_PART = 1 << 1
EXPORT_QP = 1 << 2
EXPORT_PRED = 1 << 3
EXPORT_RES = 1 << 4
EXPORT_RECON = 1 << 5
EXPORT_COEF = 1 << 6
EXPORT_LEVEL = 1 << 7
EXPORT_QSTEP = 1 << 8


def _yuv(group: str) -> tuple[str, ...]:
    return tuple(f"{group}/{p}" for p in "yuv")


# Group name -> the array paths it holds ("frame" holds per-frame metadata, always present).
FIELD_GROUPS: dict[str, tuple[str, ...]] = {
    "frame": tuple(f"frame/{k}" for k in ("decode_index", "pts", "poc", "type", "key", "pkt_bytes", "flags")),
    "decoded": _yuv("decoded"),
    "prediction": _yuv("prediction"),
    "residual": _yuv("residual"),
    "recon": _yuv("recon"),
    "coeffs": _yuv("coeffs"),
    "levels": _yuv("levels"),
    "qstep": _yuv("qstep"),
    "block": tuple(
        f"block/{k}"
        for k in (
            "mv_l0", "mv_l1", "ref_l0", "ref_l1", "ref_poc_l0", "ref_poc_l1", "qp_y", "qp_cb", "qp_cr",
            "mode", "cu_log2", "pu_w", "pu_h", "tu_log2", "tkind", "intra_mode",
        )
    ),
    "h264": tuple(f"h264/{k}" for k in ("mb_type", "cbp", "chroma_pred_mode", "sub_mb_type", "dc_qmul")),
    "hevc": tuple(f"hevc/{k}" for k in ("cu", "tu", "counts", "sao", "bs_v", "bs_h")),
}

# Groups of codec-specific extras -> the codec (``info()["codec"]``) they belong to.
CODEC_EXTRAS: dict[str, str] = {"h264": "h264", "hevc": "hevc"}

# Group name -> export bits the decoder needs for it.
GROUP_EXPORT_BITS: dict[str, int] = {
    "frame": 0,
    "decoded": 0,
    "prediction": EXPORT_PRED,
    "residual": EXPORT_RES,
    "recon": EXPORT_RECON,
    "coeffs": EXPORT_COEF,
    "levels": EXPORT_LEVEL,
    "qstep": EXPORT_QSTEP,
    "block": EXPORT_MV | EXPORT_PART | EXPORT_QP,
    "h264": EXPORT_PART | EXPORT_QP,
    "hevc": EXPORT_PART | EXPORT_QP,
}


class FrameFlag(enum.IntFlag):
    """Bits of ``frame/flags``."""

    CORRUPT = 1 << 0  # FFmpeg reported a decode error for this frame or a packet since the last one
    INCOMPLETE = 1 << 1  # some blocks were not decoded/exported; their data is zeroed
    UNSUPPORTED = 1 << 2  # structure not exported (MBAFF/field); export arrays are zero
    LOSSLESS = 1 << 3  # transform-bypass blocks present
    PCM = 1 << 4  # PCM blocks present
    NO_EXPORT = 1 << 5  # export asked for but the decoder attached none; export arrays are zero
    SIZE_CHANGED = 1 << 6  # picture size (or format) differs from the stream's first; all arrays are zero


def parse_fields(fields: str | Iterable[str] | None) -> tuple[str, ...]:
    """Normalise ``fields`` (None/"all", "a,b" or names) to group names in schema order, 'frame' first."""
    if fields is None:
        return tuple(FIELD_GROUPS)
    names = [n.strip() for n in fields.split(",")] if isinstance(fields, str) else [str(n).strip() for n in fields]
    if names == ["all"]:
        return tuple(FIELD_GROUPS)
    unknown = [n for n in names if n not in FIELD_GROUPS]
    if unknown:
        raise ValueError(
            f"unknown field group {unknown[0]!r}; valid groups: {', '.join(FIELD_GROUPS)} (or 'all')"
        )
    return ("frame",) + tuple(g for g in FIELD_GROUPS if g in names and g != "frame")


def groups_for_codec(groups: Iterable[str], codec: str) -> tuple[str, ...]:
    """``groups`` without the codec-specific extras of other codecs (``h264`` for HEVC video, ...)."""
    return tuple(g for g in groups if CODEC_EXTRAS.get(g, codec) == codec)


def export_bits(groups: Iterable[str]) -> int:
    """The export_internals bits the decoder needs for ``groups``."""
    bits = 0
    for g in groups:
        bits |= GROUP_EXPORT_BITS[g]
    return bits
