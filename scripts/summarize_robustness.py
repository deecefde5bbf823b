#!/usr/bin/env python3
"""Tables of galaxy10_robustness results: accuracy (%) clean and under each fixed shift, one row
per run, then per group the mean over its runs (seeds or folds) with the lowest and highest run.

usage: summarize_robustness.py GROUP=FILE.json[,FILE.json...] [GROUP=...]
  Each FILE is a galaxy10_robustness --json output holding one model.
Prints Markdown. "mean" and "worst" are over the shifts other than clean; "gap" is clean minus
mean, "worst gap" clean minus worst. Standard library only.
"""
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        j = json.load(f)
    if len(j["models"]) != 1:
        raise SystemExit(f"{path}: holds {len(j['models'])} models; give one file per run")
    m = j["models"][0]
    names = [s["name"] for s in j["shifts"]]
    acc = [100 * m["scores"][n]["accuracy"] for n in names]
    f1 = 100 * m["scores"]["clean"]["macro_f1"]
    recall = min(c["recall"] for c in m["clean_per_class_recall"])
    return names, acc, f1, recall, j["images"], m["label"]


def main(argv):
    if not argv or any("=" not in a for a in argv):
        raise SystemExit(__doc__)
    groups, names = [], None
    for arg in argv:
        group, files = arg.split("=", 1)
        rows = []
        for path in files.split(","):
            n, acc, f1, recall, images, label = load(path)
            if names is None:
                names = n
            elif n != names:
                raise SystemExit(f"{path}: another shift list ({n}) than the first file ({names})")
            shifted = acc[1:]
            rows.append((label, acc, statistics.mean(shifted), min(shifted), f1, recall, images))
        groups.append((group, rows))
    head = ["group", "run", "images"] + names + ["mean", "worst", "gap", "worst gap", "clean macro F1", "min class recall"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for group, rows in groups:
        for label, acc, mean, worst, f1, recall, images in rows:
            cells = [f"{v:.1f}" for v in acc + [mean, worst, acc[0] - mean, acc[0] - worst, f1]] + [f"{recall:.2f}"]
            print(f"| {group} | {label} | {images} | " + " | ".join(cells) + " |")
    print()
    head = ["group", "runs"] + names + ["mean", "worst", "gap", "worst gap", "clean macro F1", "min class recall"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for group, rows in groups:
        cols = list(zip(*[r[1] + [r[2], r[3], r[1][0] - r[2], r[1][0] - r[3], r[4], 100 * r[5]] for r in rows]))
        cells = []
        for k, c in enumerate(cols):
            lo, hi = min(c), max(c)
            scale = 0.01 if k == len(cols) - 1 else 1
            fmt = "{:.2f}" if k == len(cols) - 1 else "{:.1f}"
            text = fmt.format(statistics.mean(c) * scale)
            if len(c) > 1:
                text += " (" + fmt.format(lo * scale) + "-" + fmt.format(hi * scale) + ")"
            cells.append(text)
        print(f"| {group} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
