"""Final step: gather the statuses of a dataset build into a manifest (one line per shard), a
deterministic train/val/test split by identity, a failure report and a summary table.

    python -m pipelines.manifest OUT

Writes ``OUT/manifest.jsonl``, ``OUT/splits/{train,val,test}.txt`` (shard paths, relative to OUT),
``OUT/failures.tsv`` (video, setting, reason, message; a step that crashed has reason ``error``)
and ``OUT/summary.txt`` (the table it prints).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pipelines.common import atomic_path, main_guard, read_json, write_if_changed
from pipelines.plan import split_of


def _read(path: str) -> dict[str, Any] | None:
    try:
        return read_json(path)
    except FileNotFoundError:
        return None


def gather(out: str, settings: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(manifest rows, failure rows, per-video rows) from OUT's sources, split config and statuses."""
    with open(os.path.join(out, "sources.tsv")) as f:
        next(f)
        sources = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    fractions = tuple(read_json(os.path.join(out, "config", "split.json"))["fractions"])
    rows, failures, videos = [], [], []
    for _, vid, identity, src in sources:
        split = split_of(identity, fractions)  # type: ignore[arg-type]
        prep = _read(os.path.join(out, "work", vid, "prep.json"))
        v = {"video": vid, "identity": identity, "split": split, "source": src, "prep": prep, "shards": {}}
        videos.append(v)
        if prep is None:
            log = os.path.join(out, "work", vid, "prep.log")
            failures.append({"video": vid, "setting": "-", "reason": "error" if os.path.exists(log) else "not-run",
                             "message": f"prepare crashed, see {log}" if os.path.exists(log)
                             else "prepare has not run (a slice not built yet?)"})
            continue
        if prep["status"] != "ok":
            failures.append({"video": vid, "setting": "-", "reason": prep["reason"], "message": prep["message"]})
            continue
        for name in settings:
            st = _read(os.path.join(out, "shards", vid, name + ".json"))
            v["shards"][name] = st
            if st is None:
                log = os.path.join(out, "shards", vid, name + ".log")
                failures.append({"video": vid, "setting": name, "reason": "error" if os.path.exists(log) else "not-run",
                                 "message": f"shard crashed, see {log}" if os.path.exists(log) else "not built yet"})
            elif st["status"] != "ok":
                failures.append({"video": vid, "setting": name, "reason": st["reason"], "message": st["message"]})
            else:
                rows.append({"shard": os.path.relpath(st["shard"], out), "video": vid, "identity": identity,
                             "split": split, "codec": st["codec"], "setting": name, "mode": st["mode"],
                             "value": st["value"], "frames": st["frames"], "fps": prep["fps"],
                             "bitrate_kbps": st["bitrate_kbps"], "gop": st["gop"], "bytes": st["bytes"]})
    return rows, failures, videos


def summary(rows: list[dict[str, Any]], failures: list[dict[str, Any]], videos: list[dict[str, Any]],
            settings: list[str]) -> str:
    """The closing table: one line per video (frames, seconds, split, achieved kbit/s per setting)."""
    w = max([len("video")] + [len(v["video"]) for v in videos])
    cols = [max(len(s), 9) for s in settings]
    head = f"{'video':<{w}}  {'frames':>6}  {'secs':>6}  {'split':<5}  " + "  ".join(
        f"{s:>{c}}" for s, c in zip(settings, cols))
    lines = [head, "-" * len(head)]
    for v in videos:
        p = v["prep"] or {}
        if p.get("status") != "ok":
            why = p.get("reason", "error/not run") if p else "error/not run"
            lines.append(f"{v['video']:<{w}}  {'-':>6}  {'-':>6}  {v['split']:<5}  skipped: {why}")
            continue
        cells = []
        for s, c in zip(settings, cols):
            st = v["shards"].get(s)
            cells.append(f"{st['bitrate_kbps']:>{c - 5}.1f}kb/s" if st and st["status"] == "ok"
                         else f"{(st or {}).get('reason', 'missing'):>{c}}")
        lines.append(f"{v['video']:<{w}}  {p['frames']:>6}  {p['duration_s']:>6.1f}  {v['split']:<5}  " + "  ".join(cells))
    by = Counter(f["reason"] for f in failures)
    total_bytes = sum(r["bytes"] for r in rows)
    lines += ["", f"{len(videos)} videos, {len(rows)} shards ({total_bytes / 1e6:.1f} MB), "
              f"splits: " + ", ".join(f"{k} {sum(r['split'] == k for r in rows)}" for k in ("train", "val", "test"))
              + ("; failures: " + ", ".join(f"{k} {n}" for k, n in sorted(by.items())) if failures else "; no failures")]
    return "\n".join(lines) + "\n"


def write(out: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    listed = os.path.join(out, "config", "settings.json")
    settings = read_json(listed if os.path.exists(listed) else os.path.join(out, "config", "encode.json"))["settings"]
    rows, failures, videos = gather(out, settings)
    for split in ("train", "val", "test"):
        os.makedirs(os.path.join(out, "splits"), exist_ok=True)
        write_if_changed(os.path.join(out, "splits", split + ".txt"),
                         "".join(r["shard"] + "\n" for r in rows if r["split"] == split))
    write_if_changed(os.path.join(out, "failures.tsv"), "video\tsetting\treason\tmessage\n" + "".join(
        f"{f['video']}\t{f['setting']}\t{f['reason']}\t{f['message']}\n" for f in failures))
    table = summary(rows, failures, videos, settings)
    write_if_changed(os.path.join(out, "summary.txt"), table)
    with atomic_path(os.path.join(out, "manifest.jsonl"), ".jsonl") as tmp, open(tmp, "w") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    return rows, failures, table


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.manifest", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the dataset folder (OUT of pipelines.plan)")
    a = p.parse_args(argv)
    if not os.path.isfile(os.path.join(a.out, "sources.tsv")):
        print(f"error: {a.out}: no sources.tsv; run `make dataset` or `python -m pipelines.plan` first",
              file=sys.stderr)
        return 2
    _rows, failures, table = write(a.out)
    print(table, end="")
    if failures:
        print(f"failures: {os.path.join(a.out, 'failures.tsv')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
