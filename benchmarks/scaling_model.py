#!/usr/bin/env python3
"""Predicted data-parallel efficiency of PaperNet training (docs/distributed.md).

Weak scaling, the paper's batch of 32 images per rank. Per step a rank computes for t_c (measured:
img/s of galaxy10_train, see benchmarks/distributed_figures.sh) and then waits for the gradient sum
(sums not overlapped, hubble's default). The sum of M = 2.62 MB by an alpha-beta model:
  halving + allgather (hubble's default):  2 log2(N) alpha + 2 (N-1)/N M / B
  recursive doubling:                      log2(N) (alpha + M / B)
  efficiency = t_c / (t_c + t_sum)   (1 = perfect; images/s = N * 32 / (t_c + t_sum))

  python3 benchmarks/scaling_model.py [t_c_ms ...]
"""
import math
import sys

M = 654_922 * 4  # bytes of PaperNet's gradients
NETWORKS = [  # name, bandwidth in bytes/s, latency alpha in s (per message)
    ("10 Gb/s Ethernet", 10e9 / 8, 20e-6),
    ("100 Gb/s InfiniBand", 100e9 / 8, 2e-6),
]
RANKS = [2, 8, 64, 256]


def halving(n, bw, alpha):
    return 2 * math.log2(n) * alpha + 2 * (n - 1) / n * M / bw


def doubling(n, bw, alpha):
    return math.log2(n) * (alpha + M / bw)


def main():
    # Measured on a quiet 16-core Xeon (docs/distributed.md): 801 img/s on 2 threads, 1942 on 16.
    computes = [float(a) for a in sys.argv[1:]] or [32 / 801 * 1e3, 32 / 1942 * 1e3]
    for t_c_ms in computes:
        t_c = t_c_ms / 1e3
        print(f"compute per step of 32 images: {t_c_ms:.1f} ms")
        print(f"  {'network':22} {'sum':10} " + " ".join(f"{'N=' + str(n):>16}" for n in RANKS))
        for name, bw, alpha in NETWORKS:
            for label, cost in (("halving", halving), ("doubling", doubling)):
                cells = []
                for n in RANKS:
                    t = cost(n, bw, alpha)
                    cells.append(f"{t * 1e3:5.2f} ms {t_c / (t_c + t):4.0%}")
                print(f"  {name:22} {label:10} " + " ".join(f"{c:>16}" for c in cells))
        print()


if __name__ == "__main__":
    main()
