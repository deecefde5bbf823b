#!/usr/bin/env python3
"""Summarise Galaxy10 runs: one row per run, then mean, spread (min-max) per group.

usage: summarize_runs.py GROUP=DIR[,DIR...] [GROUP=DIR,...]
  e.g. summarize_runs.py hubble-paper=runs/paper_s0,runs/paper_s1 torch-paper=runs/torch_s0

Reads each DIR/metrics.json: hubble's (figures under "test") or torch_galaxy10.py's (figures at
the top level, "evaluated_on": "test"). Prints a Markdown table. Uses only the standard library.
"""
import json
import os
import statistics
import sys

KEYS = ["accuracy", "macro_precision", "macro_recall", "macro_f1"]


def test_figures(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        m = json.load(f)
    if "test" in m:                      # hubble's galaxy10_train
        return m["test"]
    if m.get("evaluated_on") == "test":  # scripts/torch_galaxy10.py
        return m
    raise SystemExit(f"{run_dir}/metrics.json: no test figures (was --test-data given?)")


def seconds(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(path):             # hubble: one JSON object per epoch
        with open(path) as f:
            return sum(json.loads(line)["seconds"] for line in f if line.strip())
    with open(os.path.join(run_dir, "metrics.json")) as f:
        return sum(row["seconds"] for row in json.load(f).get("history", []))


def main(argv):
    if not argv or any("=" not in a for a in argv):
        raise SystemExit(__doc__)
    print("| group | run | accuracy | macro precision | macro recall | macro F1 | training time |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for arg in argv:
        group, dirs = arg.split("=", 1)
        rows = []
        for d in dirs.split(","):
            fig = test_figures(d)
            rows.append([fig[k] for k in KEYS] + [seconds(d)])
            cells = " | ".join(f"{v:.3f}" for v in rows[-1][:4])
            print(f"| {group} | {os.path.basename(d.rstrip('/'))} | {cells} | {rows[-1][4] / 60:.1f} min |")
        summary.append((group, rows))
    print()
    print("| group | runs | accuracy | macro precision | macro recall | macro F1 | training time (mean) |")
    print("|---|---|---|---|---|---|---|")
    for group, rows in summary:
        cols = list(zip(*rows))
        cells = " | ".join(f"{statistics.mean(c):.3f} ({min(c):.3f}-{max(c):.3f})" for c in cols[:4])
        print(f"| {group} | {len(rows)} | {cells} | {statistics.mean(cols[4]) / 60:.1f} min |")


if __name__ == "__main__":
    main(sys.argv[1:])
