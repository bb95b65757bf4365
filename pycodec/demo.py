"""``python -m pycodec.demo OUTDIR``: make a sample clip, extract it to HDF5 and draw one frame."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pycodec import cli, samples, store


def pick_frame(h5_path: str) -> int:
    """A frame worth drawing: the largest B frame (both MV lists, most data), else the largest P frame."""
    with store.open_h5(h5_path) as f:
        types = bytes(f["frame/type"][:]).decode("ascii", "replace")
        size = f["frame/pkt_bytes"][:]
    for t in "BP":
        idx = [i for i, c in enumerate(types) if c == t]
        if idx:
            return max(idx, key=lambda i: (int(size[i]), -i))
    return 0


def run(outdir: str, width: int = 256, height: int = 256, frames: int = 60, fps: int = 30) -> int:
    """Build the sample, extract all fields, render one frame; returns the exit code."""
    os.makedirs(outdir, exist_ok=True)
    video = os.path.join(outdir, "sample.mp4")
    h5 = os.path.join(outdir, "sample.h5")
    print(
        f"[1/3] encoding {frames} frames of {width}x{height} at {fps} fps with libx264 (B-frames) -> {video}"
    )
    samples.make_talking_sample(video, width, height, frames, fps=fps)
    print(f"[2/3] pycodec extract {video} {h5}")
    rc = cli.main(["extract", video, h5, "--overwrite"])
    if rc:
        return rc
    n = pick_frame(h5)
    png = os.path.join(outdir, f"frame_{n:03d}.png")
    print(f"[3/3] pycodec show {h5} --frame {n} -o {png}")
    rc = cli.main(["show", h5, "--frame", str(n), "-o", png])
    if rc:
        return rc
    print("\noutputs:")
    print(f"  sample video   {os.path.abspath(video)}")
    print(f"  internals      {os.path.abspath(h5)}")
    print(f"  figure         {os.path.abspath(png)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the demo."""
    p = argparse.ArgumentParser(prog="python -m pycodec.demo", description=__doc__)
    p.add_argument("outdir", help="directory for sample.mp4, sample.h5 and the PNG")
    p.add_argument("--size", default="256x256", help="WxH of the sample (default 256x256)")
    p.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    p.add_argument("--fps", type=int, default=30, help="frame rate (default 30)")
    a = p.parse_args(argv)
    try:
        w, h = (int(x) for x in a.size.lower().split("x"))
    except ValueError:
        print(f"pycodec.demo: error: --size {a.size!r} is not WxH; use e.g. 256x256", file=sys.stderr)
        return 2
    return run(a.outdir, w, h, a.frames, a.fps)


if __name__ == "__main__":
    sys.exit(main())
