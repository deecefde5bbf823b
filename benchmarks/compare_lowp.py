#!/usr/bin/env python3
"""hubble's low-precision paths beside PyTorch's, measured in one run on the same machine and threads.

  int8 inference  PaperNet at batch 1 and 64: hubble's QuantizedPlan (infer_throughput
                  throughput-int8: u8 activations, per-filter s8 weights, fp32 head) against PyTorch's
                  eager post-training static quantisation on its quantised engine (onednn when this
                  torch has it, else fbgemm): Conv+ReLU fused, MaxPool on quantised tensors, the
                  Dense head in fp32, as hubble's. Both calibrated on seeded random images.
  bf16 training   PaperNet training steps at batch 32: hubble's --precision bf16 path (bench_paper_net
                  --plain train 32 S bf16) against PyTorch with torch.autocast(cpu, bfloat16) and Adam;
                  fp32 of both for context.

Weights are seeded, not trained: speed does not depend on their values. Rounds alternate which side
goes first; medians of the rounds are compared. The last line is

  torch_int8_b1=<hubble / torch> torch_int8_b64=<...> torch_bf16_train_b32=<...> bf16_train_b32=<...>

where the last is hubble's own bf16 training over its fp32 training (the issue's 1.5x target).

usage: /usr/bin/python3 benchmarks/compare_lowp.py [--rounds 3] [--seconds 2] [--threads 2] [--quick]
(ctest bench.compare_lowp runs --quick: a smoke test, no timing asserted; skipped without torch)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("compare_lowp.py needs torch: run it with /usr/bin/python3 (Debian's python3-torch; "
          "scripts/install-deps.sh --with-torch)", file=sys.stderr)
    sys.exit(77 if "--skip-missing" in sys.argv else 1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PaperNet(nn.Module):
    """The paper's network in NCHW, with quantisation stubs around the convolutional part."""

    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.convs = nn.ModuleList([nn.Conv2d(3, 32, 5, stride=2), nn.Conv2d(32, 64, 3), nn.Conv2d(64, 128, 3),
                                    nn.Conv2d(128, 256, 3)])
        self.relus = nn.ModuleList([nn.ReLU() for _ in range(4)])
        self.dequant = torch.ao.quantization.DeQuantStub()
        self.dense_1 = nn.Linear(1024, 256)
        self.dense_2 = nn.Linear(256, 10)

    def features(self, x):
        for conv, relu in zip(self.convs, self.relus):
            x = F.max_pool2d(relu(conv(x)), 2)
        return x

    def forward(self, x):
        x = self.dequant(self.features(self.quant(x)))
        # hubble flattens NHWC; the order does not change the cost
        x = F.relu(self.dense_1(x.reshape(x.shape[0], -1)))
        return self.dense_2(x)


def rate(step, batch, seconds):
    """Images per second of step(), timed for at least `seconds` after three warm-up calls."""
    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    return n / (time.perf_counter() - t0)


def torch_int8(batch, seconds):
    engines = torch.backends.quantized.supported_engines
    engine = "onednn" if "onednn" in engines else "fbgemm"
    torch.backends.quantized.engine = engine
    torch.manual_seed(1)
    m = PaperNet().eval()
    m.qconfig = torch.ao.quantization.get_default_qconfig(engine)
    m.dense_1.qconfig = None  # the head stays fp32, as hubble's
    m.dense_2.qconfig = None
    for i in range(4):
        torch.ao.quantization.fuse_modules(m, [[f"convs.{i}", f"relus.{i}"]], inplace=True)
    torch.ao.quantization.prepare(m, inplace=True)
    with torch.inference_mode():
        m(torch.rand(32, 3, 128, 128))  # calibration
    torch.ao.quantization.convert(m, inplace=True)
    x = torch.rand(batch, 3, 128, 128)
    with torch.inference_mode():
        return rate(lambda: m(x), batch, seconds), engine


def torch_train(batch, seconds, bf16):
    torch.manual_seed(1)
    m = PaperNet().train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 128, 128).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()

    return rate(step, batch, seconds)


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--quick", action="store_true", help="one short round (a smoke test; no figures)")
    ap.add_argument("--infer-bin", help="infer_throughput (default: BUILD/benchmarks/infer_throughput, built if needed)")
    ap.add_argument("--bench-bin", help="bench_paper_net (default: BUILD/benchmarks/bench_paper_net, built if needed)")
    ap.add_argument("--skip-missing", action="store_true", help="exit 77 (skipped) when torch is missing")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.seconds = 1, 0.2
    torch.set_num_threads(a.threads)
    if not (a.infer_bin and a.bench_bin):
        subprocess.run(["cmake", "--build", a.build, "--target", "infer_throughput", "bench_paper_net"], check=True,
                       stdout=subprocess.DEVNULL)
    infer = a.infer_bin or os.path.join(a.build, "benchmarks", "infer_throughput")
    bench = a.bench_bin or os.path.join(a.build, "benchmarks", "bench_paper_net")
    env_threads = dict(os.environ, OMP_NUM_THREADS=str(a.threads))

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, model = os.path.join(tmp, "paper.h5"), os.path.join(tmp, "paper.int8.h5")
        run([infer, "make-checkpoint", "paper", ckpt])
        info = json.loads(run([infer, "quantize", ckpt, model]))
        results = {k: [] for k in ("hubble_int8_b1", "torch_int8_b1", "hubble_int8_b64", "torch_int8_b64",
                                   "hubble_train_fp32", "hubble_train_bf16", "torch_train_fp32", "torch_train_bf16")}
        engine = "?"
        for r in range(a.rounds):
            hubble_first = r % 2 == 0
            for batch in (1, 64):
                def hubble():
                    out = json.loads(run([infer, "throughput-int8", model, "--batch", str(batch), "--seconds",
                                          str(a.seconds), "--threads", str(a.threads)]))
                    results[f"hubble_int8_b{batch}"].append(out["int8"])

                def peer():
                    nonlocal engine
                    v, engine = torch_int8(batch, a.seconds)
                    results[f"torch_int8_b{batch}"].append(v)

                for f in ((hubble, peer) if hubble_first else (peer, hubble)):
                    f()
            for precision in ("fp32", "bf16"):
                def hubble_train():
                    variant = "bf16" if precision == "bf16" else "tuned"
                    out = subprocess.run([bench, "--plain", "train", "32", str(a.seconds), variant], check=True,
                                         capture_output=True, text=True, env=env_threads).stdout
                    results[f"hubble_train_{precision}"].append(float(out.split()[0]))

                def torch_training():
                    results[f"torch_train_{precision}"].append(torch_train(32, a.seconds, precision == "bf16"))

                for f in ((hubble_train, torch_training) if hubble_first else (torch_training, hubble_train)):
                    f()
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in results.items()), flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"\nCPU: {cpu}; {a.threads} threads; hubble int8 path {info.get('int8_path')}; torch {torch.__version__}, "
          f"quantised engine {engine}; medians of {a.rounds} alternating rounds of {a.seconds} s")
    print(f"{'case':28s} {'hubble img/s':>13s} {'PyTorch img/s':>14s} {'hubble/PyTorch':>15s}")
    rows = [("int8 inference, batch 1", "hubble_int8_b1", "torch_int8_b1"),
            ("int8 inference, batch 64", "hubble_int8_b64", "torch_int8_b64"),
            ("fp32 training, batch 32", "hubble_train_fp32", "torch_train_fp32"),
            ("bf16 training, batch 32", "hubble_train_bf16", "torch_train_bf16")]
    for name, h, t in rows:
        print(f"{name:28s} {med[h]:13.1f} {med[t]:14.1f} {med[h] / med[t]:15.2f}")
    print(f"torch_int8_b1={med['hubble_int8_b1'] / med['torch_int8_b1']:.3f} "
          f"torch_int8_b64={med['hubble_int8_b64'] / med['torch_int8_b64']:.3f} "
          f"torch_bf16_train_b32={med['hubble_train_bf16'] / med['torch_train_bf16']:.3f} "
          f"bf16_train_b32={med['hubble_train_bf16'] / med['hubble_train_fp32']:.3f}")


if __name__ == "__main__":
    main()
