"""Table 1 of MDVD-Net (the ablation rows) under one budget, over as many sessions as it takes.

    python -m pipelines.table1 --manifest data/manifest.jsonl [--rows 0 1 8] [--time-limit MIN]
    make table1 DATA=data/manifest.jsonl [TIME=MIN]

Trains the landmark corrector (rows 6-8 need it), then each row's config
(``pipelines/configs/table1-row<N>-*.yaml``, budget in ``table1-base.yaml``) into
``RUNS/row<N>``: a finished row (``final.pt``) is skipped, an interrupted one resumes exactly
(``--resume``), so the same command continues after a time limit, a signal or a new session.
Once every row is trained, evaluates them side by side on the test split (``pipelines.evaluate``,
every frame) and writes ``RUNS/table1.md``.  Each run is a separate process (memory is returned).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "pipelines", "configs")
ROWS = tuple(range(9))


def row_config(row: int, configs: str = CONFIGS) -> str:
    """The config file of Table 1 row ``row`` in ``configs``."""
    found = sorted(glob.glob(os.path.join(configs, f"table1-row{row}-*.yaml")))
    if len(found) != 1:
        raise FileNotFoundError(f"Table 1 row {row}: expected one {configs}/table1-row{row}-*.yaml, found {len(found)}")
    return found[0]


def state(run: str) -> str:
    """``done`` (final.pt), ``partial`` (last.pt: resume) or ``new``."""
    if os.path.isfile(os.path.join(run, "final.pt")):
        return "done"
    return "partial" if os.path.isfile(os.path.join(run, "last.pt")) else "new"


def train(config: str, run: str, manifest: str, minutes: float, extra: Sequence[str] = ()) -> int:
    """One leg of a run: ``pipelines.train`` in a child process, resumed when it has begun."""
    cmd = [sys.executable, "-m", "pipelines.train", "--config", config, "--out", run]
    if state(run) == "partial":
        cmd.append("--resume")
    if minutes > 0:
        cmd += ["--time-limit", f"{minutes:.2f}"]
    cmd += [f"data.manifest={manifest}", *extra]
    print("table1: " + " ".join(cmd[1:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


def label(config: str) -> str:
    """``row<N>-<what>`` from a row config's file name."""
    return os.path.splitext(os.path.basename(config))[0].replace("table1-", "")


def evaluate(runs: str, configs: dict[int, str], manifest: str, split: str, setting: str,
             frame_step: int) -> dict[str, Any]:
    """Every row's final.pt as a method of one ``pipelines.evaluate`` run (named by row)."""
    models = os.path.join(runs, "eval-models")
    os.makedirs(models, exist_ok=True)
    methods = []
    for r, config in configs.items():
        dst = os.path.join(models, f"{label(config)}.pt")
        shutil.copyfile(os.path.join(runs, f"row{r}", "final.pt"), dst)
        methods += ["--method", f"model:{dst}"]
    out = os.path.join(runs, "eval")
    cmd = [sys.executable, "-m", "pipelines.evaluate", "--manifest", manifest, "--split", split,
           "--settings", setting, "--frame-step", str(frame_step), *methods, "--out", out]
    print("table1: " + " ".join(cmd[1:]), flush=True)
    if subprocess.call(cmd, cwd=ROOT) != 0:
        raise RuntimeError("the evaluation failed (its message is above)")
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def table_md(summary: dict[str, Any], split: str, setting: str, configs: dict[int, str], runs: str) -> str:
    """Markdown: one line per row, gains over the decoded input on the people of ``split``."""
    t = summary["table"][setting]
    dec = t["decoded"]
    head = f"Table 1 rows, {split} split, {setting}: decoded input Y-PSNR {dec['y_psnr']:.3f} dB ({dec['videos']} videos)"
    lines = [head, "",
             "| row | Y-PSNR | gain | worst clip | clips better | Y-SSIM | RGB gain | upper / lower gain | val gain | steps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r, config in configs.items():
        m = t[f"model:{label(config)}"]
        val, steps = "", ""
        log = os.path.join(runs, f"row{r}", "log.csv")
        if os.path.isfile(log):
            with open(log) as f:
                recs = list(csv.DictReader(f))
            vals = [float(x["val_y_gain"]) for x in recs if x.get("val_y_gain")]
            val = f"{vals[-1]:+.3f}" if vals else ""
            steps = recs[-1]["iter"] if recs else ""
        lines.append(f"| {label(config)} | {m['y_psnr']:.3f} | {m['y_psnr_gain']:+.3f} | {m['y_psnr_gain_min']:+.3f} | "
                     f"{m['videos_better']}/{m['videos']} | {m['y_ssim']:.4f} | {m['rgb_psnr_gain']:+.3f} | "
                     f"{m['upper_psnr_gain']:+.3f} / {m['lower_psnr_gain']:+.3f} | {val} | {steps} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.table1", description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=os.environ.get("PYCODEC_DATA"),
                   help="manifest.jsonl of `make dataset` (default: $PYCODEC_DATA)")
    p.add_argument("--rows", type=int, nargs="+", default=list(ROWS), choices=ROWS)
    p.add_argument("--runs", default="runs/table1", help="folder of the runs (row<N>/, landmarks/, eval/)")
    p.add_argument("--time-limit", type=float, default=0.0, metavar="MIN",
                   help="stop training after this many minutes (a later call resumes); 0: no limit")
    p.add_argument("--configs", default=CONFIGS, help="folder of table1-row<N>-*.yaml and landmarks.yaml")
    p.add_argument("--split", default="test", help="the people the rows are evaluated on")
    p.add_argument("--setting", default="h264-cbr60k", help="the evaluation setting")
    p.add_argument("--frame-step", type=int, default=1, help="evaluate every k-th frame")
    p.add_argument("--train-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every run, the corrector's too (e.g. optim.total_iters=20 for a smoke run)")
    a = p.parse_args(argv)
    if not a.manifest or not os.path.isfile(a.manifest):
        print(f"table1: error: {a.manifest or 'no --manifest'}: no such manifest; build the dataset with "
              "`make dataset` and pass --manifest (or PYCODEC_DATA)", file=sys.stderr)
        return 2
    try:
        rows = sorted(set(a.rows))
        configs = {r: row_config(r, a.configs) for r in rows}
    except FileNotFoundError as exc:
        print(f"table1: error: {exc}", file=sys.stderr)
        return 2
    a.runs, a.manifest = os.path.abspath(a.runs), os.path.abspath(a.manifest)  # the children run in ROOT
    t0 = time.monotonic()

    def left() -> float:
        return a.time_limit - (time.monotonic() - t0) / 60 if a.time_limit else 0.0

    corrector = os.path.join(a.runs, "landmarks")
    jobs: list[tuple[str, str, list[str]]] = []
    if any(r >= 6 for r in rows):
        jobs.append((os.path.join(a.configs, "landmarks.yaml"), corrector, []))
    for r in rows:
        jobs.append((configs[r], os.path.join(a.runs, f"row{r}"), ["corrector"] if r >= 6 else []))
    for config, run, extra in jobs:
        if state(run) == "done":
            print(f"table1: {run}: done", flush=True)
            continue
        if a.time_limit and left() <= 0.5:
            break
        if extra:  # the corrector's best validation weights (its final ones when it never validated)
            best = os.path.join(corrector, "best.pt")
            extra = [f"model.corrector={best if os.path.isfile(best) else os.path.join(corrector, 'final.pt')}"]
        rc = train(config, run, a.manifest, max(left(), 0.5) if a.time_limit else 0.0,
                   [*extra, *a.train_arg])
        if rc != 0:
            print(f"table1: error: training {run} stopped with exit status {rc}; rerun to resume it", file=sys.stderr)
            return 1
        if state(run) != "done":
            break  # the time limit (or a signal) stopped it: a later call resumes here
    status = {run: state(run) for _, run, _ in jobs}
    print("table1: " + ", ".join(f"{os.path.basename(k)} {v}" for k, v in status.items()), flush=True)
    if any(v != "done" for v in status.values()):
        print("table1: not every row is trained yet; run the same command again to continue", flush=True)
        return 0
    summary = evaluate(a.runs, configs, a.manifest, a.split, a.setting, a.frame_step)
    md = table_md(summary, a.split, a.setting, configs, a.runs)
    with open(os.path.join(a.runs, "table1.md"), "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
