#!/usr/bin/env python3
"""Runs the benchmark programs and prints the Markdown tables of docs/kernels.md.

    python3 benchmarks/make_tables.py [--build build] [--reps 3] [--min-time 0.5] [--batch 32]

Per layer: median GFLOP/s and % of the measured FMA peak of every variant, forward / weight
gradient / input gradient, at the given batch and all threads; thread scaling of the default
variants; whole network: training and inference images/s per variant. (PyTorch is compared by
compare_pytorch.py, which alternates the two frameworks in one run.)
"""
import argparse
import json
import os
import subprocess
import sys


def run_json(binary, filt, reps, min_time, stat):
    cmd = [binary, f"--benchmark_filter={filt}", f"--benchmark_repetitions={reps}",
           "--benchmark_format=json", f"--benchmark_min_time={min_time}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    data = json.loads(out.stdout)
    runs = {}
    for b in data["benchmarks"]:
        if b.get("run_type") == "iteration":
            runs.setdefault(b["run_name"].replace("/manual_time", ""), []).append(b)
    pick = {}
    for name, rs in runs.items():
        counter = "GFLOP/s" if "GFLOP/s" in rs[0] else "img/s"
        rs = sorted(rs, key=lambda r: r[counter])
        pick[name] = rs[-1] if stat == "best" else rs[len(rs) // 2]  # median (upper for even counts)
    return data["context"], pick


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="CMake build folder holding benchmarks/")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--stat", choices=["median", "best"], default="median",
                    help="per benchmark: the median of the repetitions, or the best (on a busy machine)")
    args = ap.parse_args()
    bench = os.path.join(args.build, "benchmarks")
    convs = os.path.join(bench, "bench_conv_kernels")
    net = os.path.join(bench, "bench_paper_net")

    ctx, m = run_json(convs, f"PeakFma|Conv/.*/batch:{args.batch}/", args.reps, args.min_time, args.stat)
    threads = max(int(k.split("threads:")[1]) for k in m if "threads:" in k)
    peak = {int(k.split("threads:")[1]): v["GFLOP/s"] for k, v in m.items() if k.startswith("PeakFma")}
    print("FMA peak (probe): " + ", ".join(f"{t} thread(s) {p:.0f} GFLOP/s" for t, p in sorted(peak.items())))
    print(f"load average at start: {ctx.get('load_avg')}; {args.stat} of {args.reps} repetitions\n")
    # The names of kernels/variants.hpp (V::name), as both benchmark programs print them.
    variants = ["im2col+eigen", "im2col+packed-gemm", "implicit-gemm", "winograd", "winograd-4x4", "tuned"]
    print(f"Per layer, batch {args.batch}, {threads} threads: GFLOP/s (% of the peak probed beside each call); "
          "Winograd counts the direct convolution's flops, so it can exceed 100%.\n")
    print("| layer | pass | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for layer in ["conv1", "conv2", "conv3", "conv4"]:
        for p in ["forward", "forward+relu+pool", "weights", "input"]:
            cells = []
            for v in variants:
                key = f"Conv/{layer}/{v}/{p}/batch:{args.batch}/threads:{threads}"
                cells.append(f"{m[key]['GFLOP/s']:.0f} ({m[key]['%peak']:.0f}%)" if key in m else "—")
            if any(c != "—" for c in cells):
                print(f"| {layer} | {p} | " + " | ".join(cells) + " |")
    print("\nThread scaling (ImplicitGemm / Winograd4x4), GFLOP/s at 1 and all threads:\n")
    print("| layer | pass | variant | 1 thread | all | speed-up |")
    print("|---|---|---|---|---|---|")
    for layer in ["conv1", "conv2", "conv3", "conv4"]:
        for p in ["forward", "forward+relu+pool", "weights", "input"]:
            for v in ["implicit-gemm", "winograd-4x4"]:
                a = m.get(f"Conv/{layer}/{v}/{p}/batch:{args.batch}/threads:1")
                b = m.get(f"Conv/{layer}/{v}/{p}/batch:{args.batch}/threads:{threads}")
                if a and b and (v == "implicit-gemm") == (layer in ("conv1", "conv4")):
                    print(f"| {layer} | {p} | {v} | {a['GFLOP/s']:.0f} | {b['GFLOP/s']:.0f} | {b['GFLOP/s'] / a['GFLOP/s']:.2f} |")

    _, n = run_json(net, "Train|Infer", args.reps, args.min_time, args.stat)
    print(f"\nWhole network (PaperNet, float), images/s ({args.stat} of {args.reps}):\n")
    nv = ["tuned", "implicit-gemm", "winograd", "winograd-4x4", "im2col+packed-gemm", "im2col+eigen"]
    cases = [("Train", 32), ("Train", 64), ("Infer", 1), ("Infer", 64)]
    print("| variant | threads | " + " | ".join(f"{c.lower()} b{b}" for c, b in cases) + " |")
    print("|---|---|" + "---|" * len(cases))
    for v in nv:
        for t in sorted({1, threads}):
            cells = [n.get(f"{c}/{v}/batch:{b}/threads:{t}") for c, b in cases]
            if any(cells):
                print(f"| {v} | {t} | " + " | ".join(f"{x['img/s']:.0f}" if x else "—" for x in cells) + " |")


if __name__ == "__main__":
    main()
