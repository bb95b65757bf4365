"""Memory of ``pycodec restore`` over a long video (docs/faces.md, "Memory"): the resident set size
every 25 frames while a generated screencast (a webcam face inset) is restored in scene mode with a
tiny random model (the model's own size does not change with the video's length).

    .venv/bin/python benchmarks/restore_memory.py --size 1280x720 --frames 300
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def rss_mb() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1]) // 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1280x720")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--every", type=int, default=25)
    a = p.parse_args()
    import torch

    import pycodec.restore as R
    from pipelines.synthetic import screencast_clip
    from pycodec.models import MDVDConfig, MDVDNet, save_checkpoint

    w, h = (int(v) for v in a.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        clip = screencast_clip(os.path.join(d, "cast.mp4"), width=w, height=h, inset=224, frames=a.frames)
        torch.manual_seed(0)
        cfg = MDVDConfig.preset("realtime", channels=8, deform_groups=2, lstm_hidden=8, lstm_layers=1, landmarks="raw")
        ck = save_checkpoint(os.path.join(d, "tiny.pt"), MDVDNet(cfg), meta={"codec": "h264"})
        write = R.VideoWriter.write
        seen = {"n": 0, "peak": 0, "rows": []}

        def counting(self, y, u, v, pts):
            write(self, y, u, v, pts)
            seen["n"] += 1
            seen["peak"] = max(seen["peak"], rss_mb())
            if seen["n"] % a.every == 0:
                seen["rows"].append((seen["n"], rss_mb()))

        R.VideoWriter.write = counting
        s = R.restore(clip, os.path.join(d, "out.mkv"), checkpoint=ck, progress=False)
    print(f"{a.size}, {a.frames} frames, mode {s.mode}, {s.frames_per_s:.2f} frames/s; RSS (MB) by frame:")
    print(" ".join(f"{n}:{m}" for n, m in seen["rows"]))
    print(f"peak {seen['peak']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
