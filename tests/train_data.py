"""A tiny training set for tests/test_train.py: one generated H.264 stream (tests/streams.py,
``main_b``: 128x96, 20 frames) extracted with ``pycodec extract`` and completed into dataset
shards (docs/schema.md "Dataset shards") with h5py, plus a ``manifest.jsonl``.

The ground truth is the decoded picture with a small per-plane offset and the ground-truth
landmarks are the decoded ones shifted by a constant, so that a model can learn something in a few
steps (falling losses); one frame per shard has no landmarks (NaN), as when no face is found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np

GT_OFFSET = {"y": 4, "u": -3, "v": 2}
LM_SHIFT = np.array([1.5, -2.0], np.float32)
SHARDS = (("alice", "train", "h264-cbr60k"), ("alice", "train", "h264-cbr80k"),
          ("bob", "val", "h264-cbr60k"), ("bob", "val", "h264-cbr80k"))


def _complete(path: Path, video: str, setting: str, seed: int) -> int:
    """Add gt/, landmarks/, face/, audio/ and the shard attributes to an extracted file."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "a") as f:
        n, h, w = f["decoded/y"].shape
        for k, off in GT_OFFSET.items():
            dec = f[f"decoded/{k}"][:].astype(np.int16)
            f.create_dataset(f"gt/{k}", data=np.clip(dec + off, 0, 255).astype(np.uint8),
                             chunks=(1, *dec.shape[1:]), compression="lzf")
        ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        shape = np.stack([w / 2 + 0.3 * w * np.cos(ang), h / 2 + 0.3 * h * np.sin(ang)], -1)
        lm_dec = (shape[None] + rng.normal(0, 1.0, (n, 68, 2))).astype(np.float32)
        lm_gt = lm_dec + LM_SHIFT
        lm_dec[n // 2] = lm_gt[n // 2] = np.nan
        f.create_dataset("landmarks/decoded", data=lm_dec)
        f.create_dataset("landmarks/gt", data=lm_gt)
        f.create_dataset("face/box", data=np.tile(np.array([w * 0.2, h * 0.2, w * 0.8, h * 0.8], np.float32), (n, 1)))
        f.create_dataset("audio/mfcc", data=rng.normal(0, 1, (n, 4, 13)).astype(np.float32))
        f.attrs.update({"dataset_schema": "pycodec-dataset/1", "video_id": video, "identity": video,
                        "setting": setting, "crop_size": w})
    return n


def build(root: Path, stream: Path) -> Path:
    """Extract ``stream`` once, copy it into the shards of :data:`SHARDS`; return the manifest path."""
    from pycodec import cli

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = root / "extracted.h5"
    assert cli.main(["extract", "--quiet", str(stream), str(base)]) == 0
    rows = []
    for i, (video, split, setting) in enumerate(SHARDS):
        rel = Path("shards") / video / f"{setting}.h5"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(base, root / rel)
        n = _complete(root / rel, video, setting, i)
        rows.append({"shard": str(rel), "video": video, "identity": video, "split": split, "codec": "h264",
                     "setting": setting, "frames": n})
    base.unlink()
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest
