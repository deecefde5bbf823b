#!/usr/bin/python3
"""hubble vs PyTorch on the paper network: training step and inference throughput, same machine,
same threads, same batch, in one run.

Each case is measured --reps times, alternating hubble and PyTorch (and swapping which goes first
every repetition) so that a noisy neighbour hurts both alike; the medians are compared. hubble
runs as `bench_paper_net --plain ...` (built by the project's CMake; its timing excludes process
start-up and two warm-up steps); PyTorch runs in this process after the same warm-up: training
eager in channels-last memory format (oneDNN's NHWC kernels, the fast path on CPU), inference in
whichever of eager channels-last, TorchScript frozen + optimize_for_inference on channels-last
or on NCHW input is fastest for that batch (probed once at start; eager at batch 1 falls back to
PyTorch's slow reference convolution for two layers, ~15x slower).

    /usr/bin/python3 benchmarks/compare_pytorch.py [--bench build/benchmarks/bench_paper_net]
                                                   [--threads 2] [--reps 5] [--seconds 2]

The last line printed is exactly
    train_b32=<r> train_b64=<r> infer_b1=<r> infer_b64=<r>
with r = hubble images/s / PyTorch images/s (medians).
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("compare_pytorch.py needs torch: run it with /usr/bin/python3 (Debian's python3-torch)")


class PaperNet(nn.Module):
    """The paper's network, as scripts/torch_galaxy10.py builds it (NHWC in, channels-last inside)."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 5, stride=2), nn.Conv2d(32, 64, 3), nn.Conv2d(64, 128, 3),
                                    nn.Conv2d(128, 256, 3)])
        self.dropout_1 = nn.Dropout(0.1)
        self.dense_1 = nn.Linear(1024, 256)
        self.dropout_2 = nn.Dropout(0.25)
        self.dense_2 = nn.Linear(256, 10)

    def forward(self, x_nhwc):
        x = x_nhwc.permute(0, 3, 1, 2)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        x = F.relu(self.dense_1(self.dropout_1(x)))
        return self.dense_2(self.dropout_2(x))


INFER_CONFIGS = ("eager-channels-last", "script-channels-last", "script-nchw")


def torch_rate(mode, batch, seconds, config="eager-channels-last"):
    """Images/s of PyTorch's training step (eager, channels-last) or inference in `config`:
    eager, or TorchScript traced + frozen + optimize_for_inference (oneDNN's fused inference path),
    fed channels-last or NCHW-contiguous input."""
    torch.manual_seed(0)
    net = PaperNet()
    x = torch.rand(batch, 128, 128, 3)
    y = torch.randint(0, 10, (batch,))
    if mode == "train":
        net = net.to(memory_format=torch.channels_last).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)

        def step():
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        net.eval()
        if config.endswith("channels-last"):
            net = net.to(memory_format=torch.channels_last)
            x = x  # the network permutes NHWC to a channels-last NCHW view itself
        else:
            x = x.contiguous()
        if config.startswith("script"):
            class Nchw(nn.Module):  # traced on NCHW input so the script sees the conv layout directly
                def __init__(self, inner):
                    super().__init__()
                    self.inner = inner

                def forward(self, z):
                    return self.inner(z.permute(0, 2, 3, 1))
            xin = x.permute(0, 3, 1, 2)
            if config == "script-nchw":
                xin = xin.contiguous()
            with torch.no_grad():
                net = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(Nchw(net).eval(), xin)))
            x = xin

        def step():
            with torch.inference_mode():
                net(x)
    for _ in range(2 if mode == "train" else 3):
        step()
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return steps * batch / elapsed


def hubble_rate(bench, mode, batch, seconds, threads, variant):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([bench, "--plain", mode, str(batch), str(seconds), variant], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def find_bench(given):
    if given:
        return given
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = sorted(glob.glob(os.path.join(root, "build*", "benchmarks", "bench_paper_net")), key=os.path.getmtime)
    if not found:
        sys.exit("bench_paper_net not found: build it (cmake --build build --target bench_paper_net) or pass --bench")
    return found[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path of bench_paper_net (default: the newest build*/benchmarks/bench_paper_net)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="measurements per case and framework (median reported)")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    ap.add_argument("--variant", default="tuned", help="hubble's convolution variant (bench_paper_net --help)")
    args = ap.parse_args()
    bench = find_bench(args.bench)
    torch.set_num_threads(args.threads)
    print(f"hubble: {bench} ({args.variant}); torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"channels-last; {args.reps} x {args.seconds:g} s per case and framework", flush=True)

    cases = [("train_b32", "train", 32), ("train_b64", "train", 64), ("infer_b1", "infer", 1), ("infer_b64", "infer", 64)]
    # PyTorch's fastest inference path differs with the batch: probe each configuration once.
    config = {}
    for key, mode, batch in cases:
        if mode == "train":
            config[key] = "eager-channels-last"
            continue
        probe = {c: torch_rate(mode, batch, min(1.0, args.seconds), c) for c in INFER_CONFIGS}
        config[key] = max(probe, key=probe.get)
        print(f"  {key}: torch " + ", ".join(f"{c} {r:.0f}" for c, r in probe.items()) + f" img/s -> {config[key]}", flush=True)
    rates = {key: {"hubble": [], "torch": []} for key, _, _ in cases}
    for rep in range(args.reps):
        for key, mode, batch in cases:
            order = ["hubble", "torch"] if rep % 2 == 0 else ["torch", "hubble"]
            for who in order:
                if who == "hubble":
                    r = hubble_rate(bench, mode, batch, args.seconds, args.threads, args.variant)
                else:
                    r = torch_rate(mode, batch, args.seconds, config[key])
                rates[key][who].append(r)
            print(f"  rep {rep + 1}: {key:<10} hubble {rates[key]['hubble'][-1]:8.1f}  torch {rates[key]['torch'][-1]:8.1f} img/s",
                  flush=True)

    print(f"{'case':<10} {'hubble img/s':>13} {'torch img/s':>12} {'ratio':>7}")
    ratios = {}
    for key, _, _ in cases:
        h, t = statistics.median(rates[key]["hubble"]), statistics.median(rates[key]["torch"])
        ratios[key] = h / t
        print(f"{key:<10} {h:13.1f} {t:12.1f} {ratios[key]:7.2f}")
    print(" ".join(f"{key}={ratios[key]:.2f}" for key, _, _ in cases))


if __name__ == "__main__":
    main()
