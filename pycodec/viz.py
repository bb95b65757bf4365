"""Figures of one extracted frame: decoded + motion vectors, partitions, QP, prediction, residual, modes."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from pycodec import store

L0_COLOUR = "#ff5a1f"  # list 0 arrows
L1_COLOUR = "#1fd4ff"  # list 1 arrows
MB_GRID_COLOUR = "white"
# block/tkind values (enum AVCodecInternalsTransformKind) -> (label, colour)
TKIND = {
    1: ("4x4", "#ffd400"),
    2: ("8x8", "#22c55e"),
    3: ("i16x16 (4x4 + DC)", "#e040fb"),
    4: ("PCM", "#ff1744"),
    5: ("bypass", "#90a4ae"),
    6: ("HEVC DCT", "#2979ff"),
    7: ("HEVC DST", "#00bfa5"),
    8: ("transform skip", "#ff9100"),
}
# block/mode values -> (label, colour)
MODES = {
    0: ("intra", "#e53935"),
    1: ("inter", "#1e88e5"),
    2: ("skip", "#9e9e9e"),
    3: ("PCM", "#fdd835"),
    4: ("lossless", "#8e24aa"),
}
FLAG_NAMES = ("CORRUPT", "INCOMPLETE", "UNSUPPORTED", "LOSSLESS", "PCM", "NO_EXPORT", "SIZE_CHANGED")
MIN_ARROW_PX = 9.0  # closest spacing of motion-vector arrows on screen, in figure pixels


def yuv_to_rgb(y: np.ndarray, u: np.ndarray | None, v: np.ndarray | None, bit_depth: int = 8) -> np.ndarray:
    """BT.601 limited-range YUV planes (any chroma subsampling) to float RGB in [0, 1]; grey if no chroma."""
    scale = float(1 << (bit_depth - 8))
    yf = y.astype(np.float32) / scale
    if u is None or v is None:
        g = np.clip((yf - 16) / 219, 0, 1)
        return np.stack([g, g, g], axis=-1)
    h, w = y.shape
    ry, rx = -(-h // u.shape[0]), -(-w // u.shape[1])
    uf = np.repeat(np.repeat(u.astype(np.float32) / scale, ry, 0), rx, 1)[:h, :w] - 128
    vf = np.repeat(np.repeat(v.astype(np.float32) / scale, ry, 0), rx, 1)[:h, :w] - 128
    c = (yf - 16) * 1.164
    rgb = np.stack([c + 1.596 * vf, c - 0.392 * uf - 0.813 * vf, c + 2.017 * uf], axis=-1) / 255
    return np.clip(rgb, 0, 1)


class _Geometry:
    """Display size, coded size and crop offsets of a file, for placing block maps on frames."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.w, self.h = int(attrs["width"]), int(attrs["height"])
        self.cw = int(attrs.get("coded_width", self.w))
        self.ch = int(attrs.get("coded_height", self.h))
        crop = attrs.get("crop") or [0, 0, 0, 0]
        self.top, self.left = int(crop[0]), int(crop[2])
        self.px = 1.0  # figure pixels per luma sample, set once the figure size is known

    def block_extent(self) -> tuple[float, float, float, float]:
        """imshow extent (left, right, bottom, top) of a coded-size block map in display coordinates."""
        return (-self.left, self.cw - self.left, self.ch - self.top, -self.top)

    def limit(self, ax: Any) -> None:
        """Show the display area only."""
        ax.set_xlim(0, self.w)
        ax.set_ylim(self.h, 0)
        ax.set_xticks([])
        ax.set_yticks([])


def _mb_grid(
    ax: Any, g: _Geometry, colour: str = MB_GRID_COLOUR, alpha: float = 0.45, lw: float = 0.5
) -> None:
    """Draw the 16x16 macroblock grid (thinner when macroblocks are small on screen)."""
    if 16 * g.px < 16:
        lw, alpha = lw * 0.5, alpha * 0.7
    segs = [((x - g.left, -g.top), (x - g.left, g.ch - g.top)) for x in range(0, g.cw + 1, 16)]
    segs += [((-g.left, y - g.top), (g.cw - g.left, y - g.top)) for y in range(0, g.ch + 1, 16)]
    ax.add_collection(LineCollection(segs, colors=colour, linewidths=lw, alpha=alpha))


def _square_outlines(rows: np.ndarray, g: _Geometry) -> list:
    """Line segments of the squares (x, y, log2 size) in ``rows``, in display coordinates."""
    segs = []
    for x, y, log2 in rows[:, :3]:
        s = 1 << int(log2)
        x0, y0 = int(x) - g.left, int(y) - g.top
        segs += [((x0, y0), (x0 + s, y0)), ((x0, y0), (x0, y0 + s)),
                 ((x0 + s, y0), (x0 + s, y0 + s)), ((x0, y0 + s), (x0 + s, y0 + s))]
    return segs


def _hevc_rows(fr: dict[str, Any], name: str) -> np.ndarray | None:
    """The valid rows of the HEVC list ``hevc/cu`` or ``hevc/tu`` of a frame, or None."""
    if f"hevc/{name}" not in fr or "hevc/counts" not in fr:
        return None
    n = int(fr["hevc/counts"][0 if name == "cu" else 1])
    return np.asarray(fr[f"hevc/{name}"][:n])


def _unit_grid(
    ax: Any, fr: dict[str, Any], g: _Geometry, colour: str = MB_GRID_COLOUR, alpha: float = 0.45, lw: float = 0.5
) -> str:
    """The coding units: HEVC's CU quadtree when the file has it, else the 16x16 macroblock grid."""
    cus = _hevc_rows(fr, "cu")
    if cus is None:
        _mb_grid(ax, g, colour, alpha, lw)
        return "MB grid"
    ax.add_collection(LineCollection(_square_outlines(cus, g), colors=colour, linewidths=lw, alpha=alpha))
    return "CU quadtree"


def _missing(ax: Any, g: _Geometry, title: str, names: list[str]) -> None:
    """An empty panel saying which field is missing."""
    ax.set_facecolor("#eeeeee")
    ax.text(
        0.5,
        0.5,
        "not in file:\n" + "\n".join(names),
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=10,
        color="#555555",
    )
    ax.set_title(f"{title}\n(missing: {', '.join(names)})", fontsize=10)
    g.limit(ax)


def _background(fr: dict[str, Any], bit_depth: int) -> tuple[np.ndarray | None, str]:
    """The best picture for a frame: decoded, else recon, else prediction (RGB), and its name."""
    for grp in ("decoded", "recon", "prediction"):
        if f"{grp}/y" in fr:
            return yuv_to_rgb(fr[f"{grp}/y"], fr.get(f"{grp}/u"), fr.get(f"{grp}/v"), bit_depth), grp
    return None, ""


def _arrow_cell(g: _Geometry) -> int:
    """Smallest block size (4..64 luma samples) at least MIN_ARROW_PX figure pixels wide."""
    cell = 4
    while cell < 64 and cell * g.px < MIN_ARROW_PX:
        cell *= 2
    return cell


def _draw_mvs(ax: Any, fr: dict[str, Any], g: _Geometry) -> tuple[list[str], float, int]:
    """Arrows per prediction partition for lists 0 and 1; returns missing fields, arrow scale and cell size.

    Quarter-pel MVs are drawn at true pixel length, magnified (scale > 1) when most are shorter than 4 px.
    Partitions smaller than the cell (too small to see) get one arrow per cell: the MV of its first block.
    """
    notes: list[str] = []
    pw, ph = fr.get("block/pu_w"), fr.get("block/pu_h")
    cell = _arrow_cell(g)
    arrows = []
    for lst, colour in ((0, L0_COLOUR), (1, L1_COLOUR)):
        mv = fr.get(f"block/mv_l{lst}")
        if mv is None:
            notes.append(f"block/mv_l{lst}")
            continue
        h4, w4 = mv.shape[:2]
        by, bx = np.mgrid[0:h4, 0:w4]
        if pw is not None and ph is not None:
            uw = np.maximum(pw.astype(np.int32), cell)
            uh = np.maximum(ph.astype(np.int32), cell)
            rep = ((bx * 4) % uw == 0) & ((by * 4) % uh == 0)
            cx, cy = bx * 4 + uw / 2, by * 4 + uh / 2
        else:  # one arrow per macroblock (or per cell when larger)
            u = max(16, cell)
            rep = ((bx * 4) % u == 0) & ((by * 4) % u == 0)
            cx, cy = bx * 4 + u / 2, by * 4 + u / 2
        ref = fr.get(f"block/ref_l{lst}")
        used = (ref >= 0) if ref is not None else (mv != 0).any(-1)
        sel = rep & used & (mv != 0).any(-1)
        if sel.any():
            arrows.append(
                (cx[sel] - g.left, cy[sel] - g.top, mv[..., 0][sel] / 4.0, mv[..., 1][sel] / 4.0, colour)
            )
    if not arrows:
        return notes, 1.0, cell
    lengths = np.concatenate([np.hypot(u, v) for _, _, u, v, _ in arrows])
    typical = float(np.percentile(lengths, 75))
    mag = float(min(8, max(1, int(np.ceil(4.0 / max(typical, 0.25)))))) if typical < 4 else 1.0
    for x, y, u, v, colour in arrows:
        ax.quiver(
            x,
            y,
            u * mag,
            v * mag,
            color=colour,
            angles="xy",
            scale_units="xy",
            scale=1,
            width=0.003,
            headwidth=4,
            headlength=4.5,
            headaxislength=4,
            minlength=0.5,
            zorder=3,
        )
    return notes, mag, cell


def _panel_mv(ax: Any, fr: dict[str, Any], g: _Geometry, bit_depth: int) -> None:
    """Decoded frame with MB grid and motion-vector arrows."""
    bg, name = _background(fr, bit_depth)
    if bg is None:
        ax.set_facecolor("black")
    else:
        ax.imshow(bg, interpolation="nearest")
    _unit_grid(ax, fr, g, alpha=0.3)
    notes, mag, cell = _draw_mvs(ax, fr, g)
    if bg is None:
        notes.insert(0, "decoded/y")
    title = f"{name or 'no picture'} + motion vectors"
    if notes:
        title += f"\n(missing: {', '.join(notes)})"
    else:
        per = "partition" if cell == 4 else f"partition (at most one per {cell}x{cell})"
        title += (
            f"\none arrow per {per}: centre → reference position{f', length x{mag:g}' if mag != 1 else ''}"
        )
    ax.set_title(title, fontsize=10)
    ax.legend(
        handles=[Patch(color=L0_COLOUR, label="list 0"), Patch(color=L1_COLOUR, label="list 1")],
        loc="lower right",
        fontsize=8,
        framealpha=0.7,
    )
    g.limit(ax)


def _panel_partitions(ax: Any, fig: Any, fr: dict[str, Any], g: _Geometry, bit_depth: int) -> None:
    """Luma with the macroblock grid and the transform partitions (4x4 / 8x8 / i16) filled and outlined."""
    y = fr.get("decoded/y", fr.get("recon/y"))
    if y is not None:
        ax.imshow(yuv_to_rgb(y, None, None, bit_depth), interpolation="nearest", alpha=0.85)
    else:
        ax.set_facecolor("#333333")
    tkind = fr.get("block/tkind")
    source = "block/tkind"
    if tkind is None and "block/tu_log2" in fr:
        tu = fr["block/tu_log2"]
        tkind = np.where(tu == 2, 1, np.where(tu == 3, 2, 0)).astype(np.uint8)
        source = "block/tu_log2"
    if tkind is None:
        unit = _unit_grid(ax, fr, g, alpha=0.8)
        ax.set_title(f"{unit} + transform partitions\n(missing: block/tkind, block/tu_log2)", fontsize=10)
        g.limit(ax)
        return
    present = [k for k in TKIND if (tkind == k).any()]
    lut = np.zeros((max(TKIND) + 1, 4))
    for k, (_, colour) in TKIND.items():
        lut[k] = matplotlib.colors.to_rgba(colour, 0.35)
    overlay = lut[np.minimum(tkind, max(TKIND))]
    ax.imshow(overlay, extent=g.block_extent(), interpolation="nearest")
    # Outlines of each transform block, when blocks are big enough on screen to see them.
    tus = _hevc_rows(fr, "tu")
    if tus is not None:  # HEVC: the coded leaves of the transform quadtrees
        segs = _square_outlines(tus[tus[:, 3] >= 0], g)
        ax.add_collection(LineCollection(segs, colors="black", linewidths=0.4, alpha=0.6))
    elif 4 * g.px >= 3:
        segs = []
        for (by, bx), k in np.ndenumerate(tkind):
            x0, y0 = bx * 4 - g.left, by * 4 - g.top
            if k in (1, 3, 7, 8):
                segs += [((x0, y0), (x0 + 4, y0)), ((x0, y0), (x0, y0 + 4))]
            elif k == 2 and bx % 2 == 0 and by % 2 == 0:
                segs += [((x0, y0), (x0 + 8, y0)), ((x0, y0), (x0, y0 + 8))]
        ax.add_collection(LineCollection(segs, colors="black", linewidths=0.3, alpha=0.5))
    unit = _unit_grid(ax, fr, g, alpha=0.9, lw=0.8)
    handles = [Patch(color=TKIND[k][1], label=TKIND[k][0]) for k in present] or [
        Patch(color="none", label="no residual")
    ]
    ax.legend(
        handles=handles, loc="lower right", fontsize=8, framealpha=0.7, title="transform", title_fontsize=8
    )
    tu_text = "TU quadtree (black)" if tus is not None else "transform partitions"
    ax.set_title(f"{unit} (white) + {tu_text}\n(from {source})", fontsize=10)
    g.limit(ax)


def _panel_qp(ax: Any, fig: Any, fr: dict[str, Any], g: _Geometry) -> None:
    """Heat map of the luma QP per 4x4 block."""
    qp = fr.get("block/qp_y")
    if qp is None:
        _missing(ax, g, "QP (luma)", ["block/qp_y"])
        return
    im = ax.imshow(
        qp,
        extent=g.block_extent(),
        interpolation="nearest",
        cmap="viridis",
        vmin=float(qp.min()),
        vmax=max(float(qp.max()), float(qp.min()) + 1),
    )
    _unit_grid(ax, fr, g, colour="black", alpha=0.15)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="QP")
    ax.set_title(f"QP heat map (block/qp_y)\nmean {qp.mean():.2f}, range {qp.min()}..{qp.max()}", fontsize=10)
    g.limit(ax)


def _panel_plane(ax: Any, fig: Any, fr: dict[str, Any], g: _Geometry, name: str, bit_depth: int) -> None:
    """Luma of the prediction (grey) or of the residual (diverging colormap centred at 0)."""
    key = f"{name}/y"
    if key not in fr:
        _missing(ax, g, f"{name} (Y)", [key])
        return
    a = fr[key]
    if name == "residual":
        nz = np.abs(a[a != 0])
        m = max(float(np.percentile(nz, 99)) if nz.size else 1.0, 1.0)  # scale on the coded samples
        im = ax.imshow(a, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        fig.colorbar(
            im, ax=ax, fraction=0.046, pad=0.02, label="residual (colours saturate at 99th pct of |r|>0)"
        )
        ax.set_title(
            f"residual (Y), centred at 0\nrange {a.min()}..{a.max()}, "
            f"{100.0 * np.count_nonzero(a) / max(a.size, 1):.1f}% non-zero",
            fontsize=10,
        )
    else:
        vmax = (1 << bit_depth) - 1
        im = ax.imshow(a, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="sample value")
        ax.set_title(f"{name} (Y)", fontsize=10)
    g.limit(ax)


def _panel_modes(ax: Any, fr: dict[str, Any], g: _Geometry) -> None:
    """Categorical map of block/mode (intra, inter, skip, PCM, lossless)."""
    mode = fr.get("block/mode")
    if mode is None:
        _missing(ax, g, "block mode", ["block/mode"])
        return
    n = max(MODES) + 1
    cmap = ListedColormap([MODES[k][1] for k in range(n)])
    ax.imshow(
        np.minimum(mode, n - 1),
        extent=g.block_extent(),
        interpolation="nearest",
        cmap=cmap,
        vmin=-0.5,
        vmax=n - 0.5,
    )
    _unit_grid(ax, fr, g, colour="black", alpha=0.25)
    counts = {k: int((mode == k).sum()) for k in MODES}
    total = max(mode.size, 1)
    handles = [
        Patch(color=MODES[k][1], label=f"{MODES[k][0]} {100.0 * c / total:.0f}%")
        for k, c in counts.items()
        if c
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)
    ax.set_title("block mode (block/mode)", fontsize=10)
    g.limit(ax)


PANELS = ("motion vectors", "partitions", "QP", "prediction", "residual", "mode")


def frame_figure(f: store.ExtractedFile, n: int, panel_width: float | None = None, dpi: int = 110) -> Any:
    """A six-panel figure of frame ``n``: MVs, partitions, QP, prediction, residual, block modes.

    2 rows x 3 columns, or 3 x 2 for wide frames; panels grow with the frame size (5.2 to 8.5 inches).
    """
    attrs = f.attrs
    g = _Geometry(attrs)
    bit_depth = int(attrs.get("bit_depth", 8))
    fr = f.frame(n)
    if panel_width is None:
        panel_width = float(np.clip(g.w / 110, 5.2, 8.5))
    panel_height = panel_width * g.h / max(g.w, 1)
    g.px = panel_width * dpi / max(g.w, 1)
    rows, cols = (3, 2) if g.w > 1.4 * g.h else (2, 3)
    fig, grid = plt.subplots(
        rows,
        cols,
        figsize=(cols * panel_width + 2.0, rows * (panel_height + 0.7) + 0.5),
        dpi=dpi,
        layout="constrained",
    )
    axes = grid.ravel() if cols == 3 else grid[[0, 0, 1, 2, 2, 1], [0, 1, 0, 0, 1, 1]]
    _panel_mv(axes[0], fr, g, bit_depth)
    _panel_partitions(axes[1], fig, fr, g, bit_depth)
    _panel_qp(axes[2], fig, fr, g)
    _panel_plane(axes[3], fig, fr, g, "prediction", bit_depth)
    _panel_plane(axes[4], fig, fr, g, "residual", bit_depth)
    _panel_modes(axes[5], fr, g)
    flags = [name for bit, name in enumerate(FLAG_NAMES) if fr["flags"] >> bit & 1]
    src = os.path.basename(str(attrs.get("source", f.path)))
    fig.suptitle(
        f"{os.path.basename(f.path)} ({src}, {attrs.get('codec', '?')} {g.w}x{g.h}) - "
        f"frame {fr['index']} of {len(f)}: "
        f"type {fr['type']}, POC {fr['poc']}, decode #{fr['decode_index']}, {fr['pkt_bytes']} bytes, "
        f"flags {'|'.join(flags) if flags else 'none'}",
        fontsize=11,
    )
    return fig


def save_frame_figure(f: store.ExtractedFile | str | os.PathLike, n: int, out: str | os.PathLike) -> str:
    """Render frame ``n`` of an extracted file (path or open file) to a PNG, written atomically."""
    if not isinstance(f, store.ExtractedFile):
        with store.open_h5(f) as opened:
            return save_frame_figure(opened, n, out)
    return save_figure(frame_figure(f, n), out)


def save_figure(fig: Any, out: str | os.PathLike) -> str:
    """Write ``fig`` to the PNG ``out`` atomically (temporary file, then rename) and close it. Only a
    regular file is ever replaced: a FIFO or a device node at ``out`` is refused (StoreError)."""
    try:
        return store.write_atomically(os.fspath(out), lambda tmp: fig.savefig(tmp, format="png"), ".png")
    finally:
        plt.close(fig)
