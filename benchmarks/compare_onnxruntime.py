#!/usr/bin/env python3
"""hubble vs ONNX Runtime on fp32 inference: PaperNet and ImprovedNet, same weights, same inputs,
same machine and threads, measured in one run.

For each network a checkpoint of seeded initial weights is made (infer_throughput make-checkpoint;
speed does not depend on training) and exported with hubble_convert (ONNX opset 13). Both sides must
first agree on that export: the probabilities of a batch of images within 1e-5 and the same argmax
for every image. Then rounds (--rounds, default 3) alternate, per network and batch (1 and 64):
  hubble   benchmarks/infer_throughput: the typed network (net.forward, eval) and hubble::Model
           (predict, the façade embedders use), each timed for --seconds after warm-up
  ORT      benchmarks/ort_bench.js in Node (npm's onnxruntime-node): graph optimisation 'all',
           sequential execution, intra-op threads --threads, inter-op 1; session.run timed
swapping which side goes first every round, so a noisy neighbour hurts both alike. Medians of
the rounds are compared. The latency mode times --calls single-image calls through hubble::Model
(and the typed network) and through one ONNX Runtime session with one reused input tensor:
median and p99, per round, medians over rounds. --profile adds per-layer times of both sides at
batch 1 and 64 (hubble: its forward chain timed step by step; ONNX Runtime: its own profiler).

int8 (unless --no-int8): each checkpoint is also quantised (infer_throughput quantize: percentile
calibration on 32 seeded images), written as a hubble-int8 file and exported by hubble_convert as
an ONNX QDQ model (hubble/onnx/onnx.hpp save_quantized). Before any timing, both sides must agree
on it: QuantizedPlan::run vs ONNX Runtime, optimised ('all', the run that is timed) and unoptimised
(the graph as written), on the seeded images, argmax equal on >= 98% and mean / max |dp| <= 1e-3 /
0.05 (the two requantise with different roundings, so a value at a rounding boundary can land one
code apart: tests/onnx/test_onnx_qdq.cpp; on a CPU without VNNI, ORT's default u8 x s8 kernels
would saturate 16-bit sums, which ort_bench.js turns off with session.x64quantprecision); and ONNX
Runtime's profiler must show QLinearConv kernels for every requantised conv stage (so ORT's side is
int8 too, not fp32 convolutions of dequantised weights). Then alternating rounds time hubble int8
(infer_throughput throughput-int8) against ONNX Runtime on the QDQ model at batch 1 and 64.
One asymmetry stays: the last conv stage, which hubble runs on int8 codes with an fp32 output (no
requantisation before the fp32 head), has no QuantizeLinear after it in the graph, so ONNX Runtime
runs it as an fp32 convolution of the dequantised weights (FusedConv); the other stages are
integer on both sides.

    python3 benchmarks/compare_onnxruntime.py [--rounds 3] [--seconds 2] [--threads 2] [--calls 1000]
                                              [--profile] [--quick] [--native] [--no-int8] [--out DIR] [--build DIR]

Builds what it needs in --build (default build/, configured if missing), installs ONNX Runtime with
scripts/install-onnxruntime.sh when .deps/onnxruntime lacks it. Writes DIR/results.json,
DIR/results.txt (the tables) and the models. The last line printed is
    ort_infer_b1=<r> ort_infer_b64=<r> improved_ort_infer_b1=<r> improved_ort_infer_b64=<r>
with r = hubble (typed network) images/s / ONNX Runtime images/s, medians; ort_* is PaperNet;
with int8 (the default) it is followed by the last line
    ort_int8_b1=<r> ort_int8_b64=<r> improved_ort_int8_b1=<r> improved_ort_int8_b64=<r>
with r = hubble int8 (QuantizedPlan) images/s / ONNX Runtime int8 (the QDQ export) images/s.
--quick is the CI smoke test: one short round, few calls; its figures mean nothing.
Exit status: 0 done, 1 failure (a disagreement, a program that failed), 2 bad usage,
77 (with --skip-missing) node or onnxruntime-node absent.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = (("paper", "PaperNet"), ("improved", "ImprovedNet"))
BATCHES = (1, 64)
SKIP = 77


def agreement(p, q, n, what):
    """hubble's probabilities p against ONNX Runtime's q, n images: argmax equality and |dp|."""
    k = len(p) // n
    if len(q) != len(p) or k * n != len(p):
        raise Failure(f"{what}: hubble gave {len(p)} probabilities, ONNX Runtime {len(q)}, for {n} images")
    diffs = [abs(x - y) for x, y in zip(p, q)]
    arg = lambda r, i: max(range(k), key=lambda j: r[i * k + j])
    return {"argmax_agree": sum(arg(p, i) == arg(q, i) for i in range(n)), "max_abs_diff": max(diffs),
            "mean_abs_diff": sum(diffs) / len(diffs), "classes_predicted": sorted({arg(p, i) for i in range(n)})}


class Failure(Exception):
    pass


def run(cmd, env=None, what=None):
    """Runs cmd, returns its stdout; a failure raises with its stderr."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        raise Failure(f"{what or os.path.basename(cmd[0])} failed (exit {p.returncode}): {' '.join(cmd)}\n"
                      f"{p.stderr.strip() or p.stdout.strip()}")
    return p.stdout


def run_json(cmd, env=None, what=None):
    out = run(cmd, env, what).strip().splitlines()
    try:
        return json.loads(out[-1])
    except (IndexError, json.JSONDecodeError):
        raise Failure(f"{what or cmd[0]}: expected one JSON line, got:\n" + "\n".join(out))


def cpu_model():
    """The CPU's name with its family and model: a VM reports "AMD EPYC" for Zen 3, 4 and 5 alike."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor's block is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name", "unknown CPU")
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def cpu_isa():
    """The widest x86 vector extension the CPU reports."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), [])
    except OSError:
        flags = []
    for isa in ("avx512f", "avx2", "avx", "sse2"):
        if isa in flags:
            return "has " + isa
    return "flags unknown"


def find_or_build(args):
    """Paths of infer_throughput and hubble_convert: given, or built in args.build."""
    if args.infer_bin and args.convert_bin:
        for p in (args.infer_bin, args.convert_bin):
            if not os.access(p, os.X_OK):
                raise Failure(f"{p}: not an executable")
        return args.infer_bin, args.convert_bin
    build = os.path.abspath(args.build or os.path.join(ROOT, "build-native" if args.native else "build"))
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        print(f"configuring {build}", flush=True)
        run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"] +
            (["-DHUBBLE_NATIVE=ON"] if args.native else []), what="cmake configure")
    elif args.native and "HUBBLE_NATIVE:BOOL=ON" not in open(os.path.join(build, "CMakeCache.txt")).read():
        raise Failure(f"--native: {build} is not configured with -DHUBBLE_NATIVE=ON")
    print("building infer_throughput hubble_convert", flush=True)
    p = subprocess.run(["cmake", "--build", build, "-j2", "--target", "infer_throughput", "hubble_convert"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.strip().splitlines()[-15:])
        hint = ""
        if "hubble_convert" in p.stdout and "No rule to make target" in p.stdout:
            hint = ("\nhubble_convert is built only with the ONNX component (libonnx-dev, libprotobuf-dev: "
                    "scripts/install-deps.sh) and HUBBLE_BUILD_EXAMPLES=ON")
        raise Failure(f"building the programs failed:\n{tail}{hint}")
    return (args.infer_bin or os.path.join(build, "benchmarks", "infer_throughput"),
            args.convert_bin or os.path.join(build, "examples", "hubble_convert"))


def find_onnxruntime(args):
    """NODE_PATH for onnxruntime-node; installs it when missing (unless --skip-missing)."""
    node_modules = os.path.join(os.path.abspath(args.ort_dir), "node_modules")
    package = os.path.join(node_modules, "onnxruntime-node", "package.json")
    if shutil.which("node") is None or not os.path.exists(package):
        if args.skip_missing:
            why = "node is not installed" if shutil.which("node") is None else f"{package} is missing"
            print(f"skipped: {why} (scripts/install-onnxruntime.sh installs ONNX Runtime for Node.js)")
            sys.exit(SKIP)
        default_dir = os.path.join(ROOT, ".deps", "onnxruntime")
        if shutil.which("node") is not None and os.path.abspath(args.ort_dir) != default_dir:
            raise Failure(f"--ort-dir {args.ort_dir}: no onnxruntime-node there ({package} is missing; "
                          "scripts/install-onnxruntime.sh installs it into .deps/onnxruntime)")
        print("installing ONNX Runtime: scripts/install-onnxruntime.sh", flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "install-onnxruntime.sh")], check=False)
        if shutil.which("node") is None:
            raise Failure("node (Node.js) is not installed, and scripts/install-onnxruntime.sh could not install it")
        if not os.path.exists(package):
            raise Failure(f"ONNX Runtime for Node.js is not installed ({package} is missing) and "
                          "scripts/install-onnxruntime.sh did not install it (offline?)")
    return node_modules


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def ratio(a, b):
    return a / b if a and b else None


class Comparison:
    def __init__(self, args, infer, convert, node_path):
        self.a = args
        self.infer, self.convert = infer, convert
        self.env = dict(os.environ, NODE_PATH=node_path, OMP_NUM_THREADS=str(args.threads))
        self.ort_js = os.path.join(ROOT, "benchmarks", "ort_bench.js")
        self.out = os.path.abspath(args.out)
        self.results = {"cpu": cpu_model(), "cpu_isa": cpu_isa(), "threads": args.threads, "rounds": args.rounds,
                        "seconds": args.seconds, "calls": args.calls, "quick": args.quick,
                        "networks": {}}

    def hubble(self, mode, ckpt, *extra):
        return run_json([self.infer, mode, ckpt, "--threads", str(self.a.threads), *map(str, extra)], self.env,
                        f"infer_throughput {mode}")

    def ort(self, mode, model, *extra):
        return run_json(["node", self.ort_js, mode, model, "--threads", str(self.a.threads), *map(str, extra)],
                        self.env, f"ort_bench.js {mode}")

    def prepare(self, key, name):
        """Checkpoint, ONNX export, and the agreement check of both sides on it."""
        ckpt, model = os.path.join(self.out, f"{key}.h5"), os.path.join(self.out, f"{key}.onnx")
        run([self.infer, "make-checkpoint", key, ckpt, "--seed", "1"], self.env, "infer_throughput make-checkpoint")
        if os.path.exists(model):
            os.remove(model)
        run([self.convert, ckpt, model], self.env, "hubble_convert")
        n = 8 if self.a.quick else 64
        inputs, hp, op = (os.path.join(self.out, f"{key}_{s}") for s in ("inputs.f32", "hubble_probs.f32", "ort_probs.f32"))
        h = self.hubble("predict", ckpt, "--batch", n, "--inputs", inputs, "--probs", hp)
        self.ort("predict", model, "--batch", n, "--inputs", inputs, "--probs", op)
        g = agreement(read_floats(hp), read_floats(op), n, name)
        diff, agree = g["max_abs_diff"], g["argmax_agree"]
        self.results["hubble_isa"] = h.get("isa", "?")
        check = {"images": n, "max_abs_diff": diff, "argmax_agree": agree, "typed_vs_model_max_abs_diff":
                 h["typed_vs_model_max_abs_diff"], "classes_predicted": g["classes_predicted"]}
        print(f"{name}: {model}: hubble and ONNX Runtime agree on {agree}/{n} argmax, "
              f"max |p_hubble - p_ort| = {diff:.2e}; typed vs Model {h['typed_vs_model_max_abs_diff']:.2e}", flush=True)
        if agree != n or not diff <= 1e-5 or not h["typed_vs_model_max_abs_diff"] <= 1e-6:
            raise Failure(f"{name}: hubble and ONNX Runtime disagree on the exported weights ({check})")
        return ckpt, model, check

    def prepare_int8(self, key, name, ckpt):
        """int8 model file, its QDQ export, and the agreement check of both sides on it."""
        qfile, model = os.path.join(self.out, f"{key}.int8.h5"), os.path.join(self.out, f"{key}.int8.onnx")
        for f in (qfile, model):
            if os.path.exists(f):
                os.remove(f)
        made = run_json([self.infer, "quantize", ckpt, qfile, "--seed", "1"], self.env, "infer_throughput quantize")
        run([self.convert, qfile, model], self.env, "hubble_convert (int8)")
        n = 32 if self.a.quick else 64
        inputs, hp, op = (os.path.join(self.out, f"{key}_int8_{s}") for s in ("inputs.f32", "hubble_probs.f32",
                                                                               "ort_probs.f32"))
        h = run_json([self.infer, "predict-int8", qfile, "--batch", str(n), "--inputs", inputs, "--probs", hp,
                      "--threads", str(self.a.threads)], self.env, "infer_throughput predict-int8")
        self.ort("predict", model, "--batch", n, "--inputs", inputs, "--probs", op)
        # The graph as it reads (no optimisation: fp32 convolutions of the dequantised weights, then
        # QuantizeLinear): the exact semantics of the export, whatever integer kernels this CPU has.
        lit = os.path.join(self.out, f"{key}_int8_ort_literal_probs.f32")
        run(["node", os.path.join(ROOT, "tests", "onnx", "run_onnxruntime.js"), model, inputs, str(n), "3", "128",
             "128", lit], self.env, "run_onnxruntime.js (int8, no optimisation)")
        p = read_floats(hp)
        fused, literal = (agreement(p, read_floats(f), n, f"{name} int8") for f in (op, lit))
        # Which kernels ONNX Runtime ran: QLinearConv for every requantised conv stage.
        prof = self.ort("profile", model, "--batch", 1, "--steps", 1, "--dir", os.path.join(self.out, "int8_ops"))
        ops = sorted({l["op"] for l in prof["layers"]})
        qlinear = sum(l["op"] == "QLinearConv" for l in prof["layers"])
        convs = sum(l["op"] in ("Conv", "FusedConv", "QLinearConv") for l in prof["layers"])
        check = {"images": n, "max_abs_diff": fused["max_abs_diff"], "mean_abs_diff": fused["mean_abs_diff"],
                 "argmax_agree": fused["argmax_agree"], "unoptimised": literal,
                 "classes_predicted": fused["classes_predicted"], "int8_path": h.get("int8_path"), "ort_ops": ops,
                 "ort_qlinearconv": qlinear, "ort_convs": convs, "calibration_images": made.get("calibration_images")}
        print(f"{name} int8: {model}: hubble (QuantizedPlan, {h.get('int8_path')}) and ONNX Runtime agree on "
              f"{fused['argmax_agree']}/{n} argmax, mean |dp| = {fused['mean_abs_diff']:.2e}, max |dp| = "
              f"{fused['max_abs_diff']:.2e} (unoptimised graph: {literal['argmax_agree']}/{n}, "
              f"{literal['mean_abs_diff']:.2e}, {literal['max_abs_diff']:.2e}); ONNX Runtime ran {qlinear} "
              f"QLinearConv of {convs} convolutions ({', '.join(ops)})", flush=True)
        bad = [w for w, g in (("optimised", fused), ("unoptimised", literal))
               if g["argmax_agree"] < 0.98 * n or not g["mean_abs_diff"] <= 1e-3 or not g["max_abs_diff"] <= 0.05]
        if bad:
            raise Failure(f"{name} int8: hubble and ONNX Runtime ({', '.join(bad)}) disagree on the QDQ export "
                          f"({check})")
        if qlinear < convs - 1:
            raise Failure(f"{name} int8: ONNX Runtime did not run the requantised stages as QLinearConv "
                          f"({qlinear} of {convs} convolutions; ops {ops}): its side would not be int8")
        return qfile, model, check

    def measure_int8(self, nets):
        a = self.a
        int8 = {}
        for key, (name, ckpt, _) in nets.items():
            qfile, model, check = self.prepare_int8(key, name, ckpt)
            int8[key] = (name, qfile, model)
            self.results["networks"][key]["int8"] = {"int8_model": qfile, "onnx": model, "agreement": check,
                                                     "rounds": {str(b): [] for b in BATCHES}}
        for r in range(a.rounds):
            hubble_first = r % 2 == 0
            for key, (name, qfile, model) in int8.items():
                res = self.results["networks"][key]["int8"]
                for b in BATCHES:
                    hr, orr = in_order(
                        hubble_first,
                        lambda: run_json([self.infer, "throughput-int8", qfile, "--batch", str(b), "--seconds",
                                          str(a.seconds), "--threads", str(a.threads)], self.env,
                                         "infer_throughput throughput-int8"),
                        lambda: self.ort("throughput", model, "--batch", b, "--seconds", a.seconds))
                    row = {"hubble_int8": hr["int8"], "ort_int8": orr["ort"]}
                    res["rounds"][str(b)].append(row)
                    print(f"round {r + 1}/{a.rounds} {name} int8 batch {b}: hubble {row['hubble_int8']:.1f}  "
                          f"ORT {row['ort_int8']:.1f} img/s", flush=True)
        for key in int8:
            res = self.results["networks"][key]["int8"]
            res["median"] = {str(b): {s: statistics.median(x[s] for x in res["rounds"][str(b)])
                                      for s in ("hubble_int8", "ort_int8")} for b in BATCHES}

    def measure(self):
        a = self.a
        os.makedirs(self.out, exist_ok=True)
        self.results["onnxruntime_node"] = run_json(["node", self.ort_js, "version"], self.env,
                                                    "ort_bench.js version")["onnxruntime_node"]
        nets = {}
        for key, name in NETWORKS:
            ckpt, model, check = self.prepare(key, name)
            nets[key] = (name, ckpt, model)
            self.results["networks"][key] = {"name": name, "checkpoint": ckpt, "onnx": model, "agreement": check,
                                             "rounds": {str(b): [] for b in BATCHES}, "latency": []}
        for r in range(a.rounds):
            hubble_first = r % 2 == 0
            for key, (name, ckpt, model) in nets.items():
                res = self.results["networks"][key]
                for b in BATCHES:
                    hr, orr = in_order(
                        hubble_first,
                        lambda: self.hubble("throughput", ckpt, "--batch", b, "--seconds", a.seconds,
                                            "--first", "typed" if hubble_first else "model"),
                        lambda: self.ort("throughput", model, "--batch", b, "--seconds", a.seconds))
                    row = {"typed": hr["typed"], "model": hr["model"], "ort": orr["ort"]}
                    res["rounds"][str(b)].append(row)
                    print(f"round {r + 1}/{a.rounds} {name} batch {b}: typed {row['typed']:.1f}  Model "
                          f"{row['model']:.1f}  ORT {row['ort']:.1f} img/s", flush=True)
                hlr, olr = in_order(hubble_first, lambda: self.hubble("latency", ckpt, "--calls", a.calls),
                                    lambda: self.ort("latency", model, "--calls", a.calls))
                res["latency"].append({**hlr, **olr})
        if a.int8:
            self.measure_int8(nets)
        for key, res in self.results["networks"].items():
            med = {}
            for b in BATCHES:
                rows = res["rounds"][str(b)]
                med[str(b)] = {s: statistics.median(x[s] for x in rows) for s in ("typed", "model", "ort")}
            res["median"] = med
            lat = res["latency"]
            res["latency_median"] = {k: statistics.median(x[k] for x in lat) for k in lat[0] if k != "calls"}
        if a.profile:
            for key, (name, ckpt, model) in nets.items():
                res = self.results["networks"][key]
                res["profile"] = {}
                for b in BATCHES:
                    steps = 3 if a.quick else (50 if b == 1 else 10)
                    hp = self.hubble("profile", ckpt, "--batch", b, "--steps", steps)
                    op = self.ort("profile", model, "--batch", b, "--steps", steps, "--dir", self.out)
                    res["profile"][str(b)] = {"hubble": hp, "ort": op}

    def report(self):
        a, R = self.a, self.results
        lines = [f"hubble vs ONNX Runtime (onnxruntime-node {R['onnxruntime_node']}), fp32 inference",
                 f"CPU: {R['cpu']} ({cpu_isa()}); {a.threads} threads (hubble OpenMP; ORT intra-op {a.threads}, "
                 f"inter-op 1, graph optimisation all, sequential)",
                 f"hubble's kernels compiled for {R['hubble_isa']}; ONNX Runtime picks its kernels at run time",
                 f"medians of {a.rounds} alternating rounds of {a.seconds} s each" +
                 ("  [--quick: smoke test, figures mean nothing]" if a.quick else ""), "",
                 f"{'network':<12} {'batch':>5} {'typed img/s':>12} {'Model img/s':>12} {'ORT img/s':>10} "
                 f"{'typed/ORT':>10} {'Model/ORT':>10} {'Model/typed':>12}"]
        for key, res in R["networks"].items():
            for b in BATCHES:
                m = res["median"][str(b)]
                lines.append(f"{res['name']:<12} {b:>5} {fmt(m['typed']):>12} {fmt(m['model']):>12} {fmt(m['ort']):>10} "
                             f"{fmt(ratio(m['typed'], m['ort']), 2):>10} {fmt(ratio(m['model'], m['ort']), 2):>10} "
                             f"{fmt(ratio(m['model'], m['typed']), 3):>12}")
        lines += ["", f"latency of one image, {a.calls} calls per round, ms (median / p99; medians over rounds)",
                  f"{'network':<12} {'Model':>16} {'typed':>16} {'ORT':>16}"]
        for key, res in R["networks"].items():
            L = res["latency_median"]
            lines.append(f"{res['name']:<12} {L['model_median_ms']:>7.3f} / {L['model_p99_ms']:<6.3f} "
                         f"{L['typed_median_ms']:>7.3f} / {L['typed_p99_ms']:<6.3f} {L['ort_median_ms']:>7.3f} / {L['ort_p99_ms']:<6.3f}")
        for key, res in R["networks"].items():
            for b, prof in sorted(res.get("profile", {}).items(), key=lambda kv: int(kv[0])):
                lines += [""] + profile_table(res["name"], int(b), prof["hubble"], prof["ort"])
        p, i = R["networks"]["paper"]["median"], R["networks"]["improved"]["median"]
        R["ratios"] = {"ort_infer_b1": ratio(p["1"]["typed"], p["1"]["ort"]),
                       "ort_infer_b64": ratio(p["64"]["typed"], p["64"]["ort"]),
                       "improved_ort_infer_b1": ratio(i["1"]["typed"], i["1"]["ort"]),
                       "improved_ort_infer_b64": ratio(i["64"]["typed"], i["64"]["ort"])}
        last = " ".join(f"{k}={v:.3f}" for k, v in R["ratios"].items())
        if a.int8:
            lines += ["", "int8: hubble QuantizedPlan vs ONNX Runtime on the QDQ export (images/s, medians)",
                      f"{'network':<12} {'batch':>5} {'hubble int8':>12} {'ORT int8':>10} {'hubble/ORT':>10} "
                      f"{'agreement (argmax, max |dp|)':>30}"]
            for key, res in R["networks"].items():
                q = res["int8"]
                g = q["agreement"]
                for b in BATCHES:
                    m = q["median"][str(b)]
                    lines.append(f"{res['name']:<12} {b:>5} {fmt(m['hubble_int8']):>12} {fmt(m['ort_int8']):>10} "
                                 f"{fmt(ratio(m['hubble_int8'], m['ort_int8']), 2):>10} "
                                 f"{g['argmax_agree']:>15}/{g['images']} {g['max_abs_diff']:.1e}")
            p8, i8 = R["networks"]["paper"]["int8"]["median"], R["networks"]["improved"]["int8"]["median"]
            R["int8_ratios"] = {"ort_int8_b1": ratio(p8["1"]["hubble_int8"], p8["1"]["ort_int8"]),
                                "ort_int8_b64": ratio(p8["64"]["hubble_int8"], p8["64"]["ort_int8"]),
                                "improved_ort_int8_b1": ratio(i8["1"]["hubble_int8"], i8["1"]["ort_int8"]),
                                "improved_ort_int8_b64": ratio(i8["64"]["hubble_int8"], i8["64"]["ort_int8"])}
            last += "\n" + " ".join(f"{k}={v:.3f}" for k, v in R["int8_ratios"].items())
        text = "\n".join(lines)
        with open(os.path.join(self.out, "results.txt"), "w") as f:
            f.write(text + "\n\n" + last + "\n")
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(R, f, indent=1)
        print("\n" + text + f"\n\n(written to {self.out}/results.txt and results.json)\n" + last)


def in_order(hubble_first, hubble, ort):
    """(hubble(), ort()), called in the order asked for."""
    if hubble_first:
        h = hubble()
        return h, ort()
    o = ort()
    return hubble(), o


def read_floats(path):
    import array
    v = array.array("f")
    with open(path, "rb") as f:
        v.frombytes(f.read())
    return v


# ---- the profile table ---------------------------------------------------------------------------
# Both sides are grouped into stages: a stage starts at each convolution (hubble: a step whose kind
# starts with Conv2D; ORT: Conv / FusedConv) and the head starts at Flatten / GlobalAvgPool / the
# first dense layer (ORT: Flatten, GlobalAveragePool, Gemm, MatMul). Steps before the first
# convolution (none in these networks) go to "input".
HUBBLE_HEAD = ("Flatten", "GlobalAvgPool", "Dense")
ORT_HEAD = ("Flatten", "GlobalAveragePool", "Gemm", "MatMul", "FusedGemm", "ReduceMean")


def stages(layers, is_conv, is_head):
    out, current, head = [], None, False
    for l in layers:
        if not head and is_head(l):
            head = True
            current = {"stage": "head", "items": []}
            out.append(current)
        elif not head and is_conv(l):
            current = {"stage": f"conv{sum(s['stage'].startswith('conv') for s in out) + 1}", "items": []}
            out.append(current)
        elif current is None:
            current = {"stage": "input", "items": []}
            out.append(current)
        current["items"].append(l)
    return out


def profile_table(name, batch, h, o):
    hs = stages(h["layers"], lambda l: l["kind"].startswith("Conv2D"), lambda l: l["kind"].split("+")[0] in HUBBLE_HEAD)
    os_ = stages(o["layers"], lambda l: l["op"] in ("Conv", "FusedConv"), lambda l: l["op"] in ORT_HEAD)
    lines = [f"per-layer forward, {name}, batch {batch}, ms per batch (hubble: {h['steps']} passes of its chain, "
             f"sum {h['total_ms']:.3f}, forward() {h['forward_ms']:.3f}; ORT profiler: sum of kernels "
             f"{o['total_ms']:.3f}, model_run {fmt(o.get('run_ms'), 3)})",
             f"{'stage':<7} {'hubble':>9} {'ORT':>9} {'hubble/ORT':>10}   hubble steps | ORT nodes"]
    ostage = {s["stage"]: s for s in os_}
    for s in hs:
        ht = sum(l["ms"] for l in s["items"])
        os_match = ostage.pop(s["stage"], None)
        ot = sum(l["ms"] for l in os_match["items"]) if os_match else None
        hdesc = ", ".join(f"{l['kind']} {l['ms']:.3f}" for l in s["items"])
        odesc = ", ".join(f"{l['op']} {l['ms']:.3f}" for l in os_match["items"]) if os_match else "-"
        lines.append(f"{s['stage']:<7} {ht:>9.3f} {fmt(ot, 3):>9} {fmt(ratio(ht, ot), 2):>10}   {hdesc} | {odesc}")
    for st, s in ostage.items():
        ot = sum(l["ms"] for l in s["items"])
        lines.append(f"{st:<7} {'-':>9} {ot:>9.3f} {'-':>10}   - | " + ", ".join(f"{l['op']} {l['ms']:.3f}" for l in s["items"]))
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0, help="timing per measurement (default 2)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=1000, help="single-image calls per latency measurement")
    p.add_argument("--profile", action="store_true", help="per-layer times of both sides at batch 1 and 64")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round, 0.05 s, 20 calls (figures mean nothing)")
    p.add_argument("--out", default=os.path.join(ROOT, "out", "compare_onnxruntime"))
    p.add_argument("--build", help="CMake build folder (default build/, or build-native/ with --native)")
    p.add_argument("--native", action="store_true",
                   help="hubble built with -DHUBBLE_NATIVE=ON (-march=native: the AVX-512 micro-kernel where the CPU "
                        "has it, as ONNX Runtime picks at run time)")
    p.add_argument("--no-int8", dest="int8", action="store_false",
                   help="skip the int8 comparison (hubble QuantizedPlan vs ONNX Runtime on the QDQ export)")
    p.add_argument("--infer-bin", help="infer_throughput to use (skips building)")
    p.add_argument("--convert-bin", help="hubble_convert to use (skips building)")
    p.add_argument("--ort-dir", default=os.path.join(ROOT, ".deps", "onnxruntime"),
                   help="folder holding node_modules/onnxruntime-node (scripts/install-onnxruntime.sh)")
    p.add_argument("--skip-missing", action="store_true",
                   help=f"exit {SKIP} with a message when node or onnxruntime-node is absent, instead of installing")
    a = p.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.calls = 1, 0.05, 20
    if a.rounds < 1 or a.threads < 1 or a.calls < 1 or a.seconds < 0:
        p.error("--rounds, --threads and --calls must be positive, --seconds non-negative")
    try:
        node_path = find_onnxruntime(a)
        infer, convert = find_or_build(a)
        c = Comparison(a, infer, convert, node_path)
        c.measure()
        c.report()
    except Failure as e:
        print(f"compare_onnxruntime: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
