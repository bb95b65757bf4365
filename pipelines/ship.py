"""Ship a trained checkpoint in the package: ``pycodec/weights/NAME.pt`` (fp16, at most 20 MB) with
its config, the training manifest's sha256, iterations, validation figures and, when given, the
evaluation's summary (pipelines/evaluate.py) on people the model never saw.

    python -m pipelines.ship runs/mdvd-h264/best.pt mdvd-h264 [--eval runs/eval/NAME/summary.json]
                             [--setting h264-cbr60k] [--force]

A checkpoint replaces the shipped one only when it is better: a higher mean Y-PSNR gain over the
decoded input in ``--eval`` (same setting), else a higher validation gain; ``--force`` overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines.common import main_guard

MAX_BYTES = 20 * 1024 * 1024
WEIGHTS = Path(__file__).resolve().parents[1] / "pycodec" / "weights"


def score(meta: dict[str, Any]) -> tuple[float, str]:
    """(figure, what it is) used to compare two checkpoints: the test gain if evaluated, else val."""
    ev = meta.get("evaluation") or {}
    if "y_psnr_gain" in ev:
        return float(ev["y_psnr_gain"]), f"test Y-PSNR gain {ev['y_psnr_gain']:+.3f} dB ({ev.get('setting')})"
    val = meta.get("val") or {}
    for k in ("val_y_gain", "y_gain"):
        if k in val:
            return float(val[k]), f"validation Y-PSNR gain {val[k]:+.3f} dB"
    return float("-inf"), "no figure"


def steps_total(meta: dict[str, Any], name: str, old_card: Path) -> int | None:
    """Training steps behind the weights: this run's, plus the shipped checkpoint's when the run
    started from it (``model.init`` = ``name``: a later session continuing the training)."""
    it = meta.get("iteration")
    init = ((meta.get("training_config") or {}).get("model") or {}).get("init")
    if it is None or init != name:
        return it
    try:
        old = json.loads(old_card.read_text())
    except (OSError, ValueError):
        return None  # the lineage is unknown
    before = old.get("steps_total", old.get("iteration"))
    return None if before is None else int(before) + int(it)


def evaluation(path: str, setting: str, method: str | None) -> dict[str, Any]:
    """The model's row of an evaluate summary.json (the one method named ``model:*``, or ``method``)."""
    s = json.loads(Path(path).read_text())
    rows = s["table"].get(setting)
    if rows is None:
        raise ValueError(f"{path}: no setting {setting!r} (has {', '.join(s['table'])})")
    names = [m for m in rows if (m == method if method else m.startswith("model:") and not m.endswith("-nobp"))]
    if len(names) != 1:
        raise ValueError(f"{path}: pick the model row with --method (rows: {', '.join(rows)})")
    r = rows[names[0]]
    peers = {m: round(v["y_psnr_gain"], 4) for m, v in rows.items() if m != names[0] and "y_psnr_gain" in v}
    return {"setting": setting, "split": s["run"]["split"], "method": names[0], "videos": r["videos"],
            "y_psnr_gain": round(r["y_psnr_gain"], 4), "y_psnr_gain_min": round(r["y_psnr_gain_min"], 4),
            "rgb_psnr_gain": round(r["rgb_psnr_gain"], 4), "y_ssim_gain": round(r["y_ssim_gain"], 5),
            "videos_better": r["videos_better"], "peers_y_psnr_gain": peers,
            "per_video": {v["video"]: round(v["y_psnr"], 4) for v in s["videos"]
                          if v["setting"] == setting and v["method"] == names[0]}}


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="best.pt or final.pt of pipelines.train")
    p.add_argument("name", help="shipped name, e.g. mdvd-h264 (pycodec.models.load('mdvd-h264'))")
    p.add_argument("--eval", help="summary.json of pipelines.evaluate with this checkpoint as a method")
    p.add_argument("--setting", default="h264-cbr60k", help="the evaluation setting that decides")
    p.add_argument("--method", help="the model's row in --eval (default: the one model:* row)")
    p.add_argument("--weights-dir", default=str(WEIGHTS))
    p.add_argument("--force", action="store_true", help="replace the shipped one even if not better")
    a = p.parse_args(argv)

    from pycodec.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    try:
        model, meta = load_checkpoint(a.checkpoint)
    except CheckpointError as exc:
        p.error(str(exc))
    meta = dict(meta)
    cfg = meta.pop("config", None)
    if isinstance(cfg, dict):  # the training config, kept whole (data, optimiser, budget)
        meta["training_config"] = cfg
    meta["source_checkpoint"] = os.path.abspath(a.checkpoint)
    if a.eval:
        try:
            meta["evaluation"] = evaluation(a.eval, a.setting, a.method)
        except (OSError, ValueError, KeyError) as exc:
            p.error(str(exc))
    dst = Path(a.weights_dir) / f"{a.name}.pt"
    new, what = score(meta)
    if dst.exists() and not a.force:
        _, old_meta = load_checkpoint(dst)
        old, old_what = score(old_meta)
        if not new > old:
            print(f"ship: {a.checkpoint} ({what}) is not better than the shipped {dst} ({old_what}); "
                  "nothing written (--force to replace it)", file=sys.stderr)
            return 1
    tmp = dst.with_name(f".{dst.name}.new")
    save_checkpoint(tmp, model, meta=meta, fp16=True)
    size = tmp.stat().st_size
    if size > MAX_BYTES:
        tmp.unlink()
        print(f"ship: {a.checkpoint}: {size / 2**20:.1f} MB in fp16, more than the 20 MB allowed; nothing written",
              file=sys.stderr)
        return 1
    load_checkpoint(tmp)  # loads back, config and weights agree
    os.chmod(tmp, 0o644)  # package data: readable by everyone (the temporary file was private)
    os.replace(tmp, dst)
    card = {k: meta.get(k) for k in ("description", "iteration", "val", "evaluation", "data_sha256", "manifest")}
    card["steps_total"] = steps_total(meta, a.name, dst.with_suffix(".json"))
    if isinstance(cfg, dict):  # how it was trained: the recipe a later session continues from
        card["training"] = {k: cfg.get(k) for k in ("seed", "model", "data", "optim")}
    card.update({"file": dst.name, "bytes": size, "config": model.cfg.to_dict()})
    card_tmp = dst.with_name(f".{dst.stem}.json.new")
    card_tmp.write_text(json.dumps(card, indent=1, default=str) + "\n")
    os.replace(card_tmp, dst.with_suffix(".json"))
    print(f"ship: {dst} ({size / 2**20:.2f} MB fp16; {what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
