// ONNX Runtime's side of the comparison (benchmarks/compare_onnxruntime.py): one exported model in
// ONNX Runtime for Node.js (npm's onnxruntime-node, CPU), with the settings an embedder would pick
// for speed: graph optimisation 'all', sequential execution, intra-op threads T, inter-op 1, and
// exact int8 arithmetic on CPUs without VNNI (session.x64quantprecision, see options()).
//
//   node ort_bench.js version
//   node ort_bench.js predict    MODEL.onnx --batch N --inputs IN.f32 --probs OUT.f32 [--threads T]
//   node ort_bench.js throughput MODEL.onnx --batch N [--seconds S] [--threads T]
//   node ort_bench.js latency    MODEL.onnx [--calls C] [--threads T]
//   node ort_bench.js profile    MODEL.onnx --batch N [--steps S] [--threads T] --dir DIR
// IN.f32: N images float32 NCHW (infer_throughput predict writes them); OUT.f32: the model's
// output, float32. Every mode prints one JSON object on stdout. Timing is of session.run()
// (the call an embedder makes; the Node binding adds a few microseconds a call over the C API).
// profile: ORT's own profiler (enableProfiling), per node kernel times averaged over S runs after
// the warm-up runs; the raw profile JSON is left in DIR.
// Finds the package through NODE_PATH (compare_onnxruntime.py sets it to .deps/onnxruntime/node_modules).
'use strict';
const fs = require('fs');
const path = require('path');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.error('ort_bench.js: cannot load onnxruntime-node (' + String(e.message).split('\n')[0] +
                '); install it with scripts/install-onnxruntime.sh and set NODE_PATH to .deps/onnxruntime/node_modules');
  process.exit(3);
}

function parse(argv) {
  const a = { batch: 1, threads: 2, seconds: 2, calls: 1000, steps: 10, positional: [] };
  for (let i = 0; i < argv.length; ++i) {
    const s = argv[i];
    if (!s.startsWith('--')) { a.positional.push(s); continue; }
    const v = argv[++i];
    if (v === undefined) throw new Error(s + ' needs a value');
    const key = s.slice(2);
    if (['batch', 'threads', 'calls', 'steps'].includes(key)) {
      a[key] = Number(v);
      if (!Number.isInteger(a[key]) || a[key] < 1) throw new Error(`${s}: bad value '${v}'`);
    } else if (key === 'seconds') {
      a.seconds = Number(v);
      if (!(a.seconds >= 0)) throw new Error(`${s}: bad value '${v}'`);
    } else if (['inputs', 'probs', 'dir'].includes(key)) a[key] = v;
    else throw new Error('unknown option ' + s);
  }
  return a;
}

function options(a, extra) {
  return Object.assign({
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    // int8 models: exact integer sums on an x86 CPU without VNNI too. There MLAS's default u8 x s8
    // kernels add pairs of products with VPMADDUBSW, which saturates at 16 bits; on a Zen 3 that
    // moved PaperNet's probabilities by up to 1.5e-3 and flipped 4 argmaxes of 64 against hubble's
    // exact QuantizedPlan, where this option (u8 x u8 kernels for weights beyond [-64, 63]) agreed
    // within 3.2e-5 on all 64. With VNNI ONNX Runtime ignores it.
    extra: { session: { x64quantprecision: '1' } },
  }, extra || {});
}

// The model's input dimensions with the batch set (the exported graph has a symbolic batch).
function inputDims(session, batch) {
  const meta = session.inputMetadata && session.inputMetadata[0];
  const shape = meta && meta.shape ? meta.shape.slice() : null;
  if (!shape || shape.length !== 4) return [batch, 3, 128, 128];
  shape[0] = batch;
  return shape.map((d) => (typeof d === 'number' && d > 0 ? d : batch));
}

function seededImages(count) {  // xorshift pixels / 255: speed does not depend on the values
  const data = new Float32Array(count);
  let s = 0x9e3779b9 >>> 0;
  for (let i = 0; i < count; ++i) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    data[i] = (s & 255) / 255;
  }
  return data;
}

async function makeSession(model, a, extra) {
  if (!fs.existsSync(model)) throw new Error(model + ': no such file');
  return ort.InferenceSession.create(model, options(a, extra));
}

function feedsFor(session, a, data) {
  const dims = inputDims(session, a.batch);
  const count = dims.reduce((x, y) => x * y, 1);
  const x = data || seededImages(count);
  if (x.length !== count) throw new Error(`input holds ${x.length} values, the model takes ${count} (${dims.join('x')})`);
  return { [session.inputNames[0]]: new ort.Tensor('float32', x, dims) };
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

async function main() {
  const a = parse(process.argv.slice(2));
  const [mode, model] = a.positional;
  if (mode === 'version') {
    const pkg = require('onnxruntime-node/package.json');
    console.log(JSON.stringify({ onnxruntime_node: pkg.version }));
    return;
  }
  if (!model) throw new Error('usage: node ort_bench.js predict|throughput|latency|profile MODEL.onnx [options]');

  if (mode === 'predict') {
    if (!a.inputs || !a.probs) throw new Error('predict: --inputs and --probs are required');
    const session = await makeSession(model, a);
    const bytes = fs.readFileSync(a.inputs);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const out = (await session.run(feedsFor(session, a, data)))[session.outputNames[0]];
    fs.writeFileSync(a.probs, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
    console.log(JSON.stringify({ batch: a.batch, output: out.dims }));
  } else if (mode === 'throughput') {
    const session = await makeSession(model, a);
    const feeds = feedsFor(session, a);
    for (let i = 0; i < 3; ++i) await session.run(feeds);
    let steps = 0;
    const t0 = now();
    let t = 0;
    do {
      await session.run(feeds);
      ++steps;
      t = now() - t0;
    } while (t < a.seconds);
    console.log(JSON.stringify({ batch: a.batch, ort: steps * a.batch / t }));
  } else if (mode === 'latency') {
    a.batch = 1;
    const session = await makeSession(model, a);
    const feeds = feedsFor(session, a);  // one tensor, reused by every call
    for (let i = 0; i < 10; ++i) await session.run(feeds);
    const t = [];
    for (let i = 0; i < a.calls; ++i) {
      const t0 = now();
      await session.run(feeds);
      t.push((now() - t0) * 1e3);
    }
    t.sort((x, y) => x - y);
    const rank = (q) => t[Math.min(t.length - 1, Math.ceil(q * t.length) - 1)];
    console.log(JSON.stringify({ calls: a.calls, ort_median_ms: rank(0.5), ort_p99_ms: rank(0.99) }));
  } else if (mode === 'profile') {
    if (!a.dir) throw new Error('profile: --dir is required');
    fs.mkdirSync(a.dir, { recursive: true });
    const prefix = path.join(path.resolve(a.dir), `ort_profile_${path.basename(model, '.onnx')}_b${a.batch}`);
    const session = await makeSession(model, a, { enableProfiling: true, profileFilePrefix: prefix });
    const feeds = feedsFor(session, a);
    const warmup = 3;
    for (let i = 0; i < warmup + a.steps; ++i) await session.run(feeds);
    session.endProfiling();
    // The profile file: <prefix>_<date>.json, the newest of them.
    const base = path.basename(prefix) + '_';
    const files = fs.readdirSync(a.dir).filter((f) => f.startsWith(base) && f.endsWith('.json'))
      .map((f) => path.join(a.dir, f)).sort((x, y) => fs.statSync(y).mtimeMs - fs.statSync(x).mtimeMs);
    if (!files.length) throw new Error(`profile: ONNX Runtime wrote no ${prefix}_*.json`);
    const events = JSON.parse(fs.readFileSync(files[0], 'utf8'));
    // Node events: "<node>_kernel_time", dur in microseconds, one per node per run, in run order.
    const nodes = new Map();
    let runs = 0;
    let runTotal = 0;
    for (const e of events) {
      if (e.cat === 'Session' && e.name === 'model_run') {
        if (runs++ >= warmup) runTotal += e.dur;
      }
      if (e.cat !== 'Node' || !String(e.name).endsWith('_kernel_time')) continue;
      const name = e.name.slice(0, -'_kernel_time'.length);
      if (!nodes.has(name)) nodes.set(name, { name, op: (e.args && e.args.op_name) || '', durs: [] });
      nodes.get(name).durs.push(e.dur);
    }
    const layers = [];
    for (const n of nodes.values()) {
      const timed = n.durs.slice(warmup);
      if (!timed.length) continue;
      layers.push({ name: n.name, op: n.op, ms: timed.reduce((x, y) => x + y, 0) / timed.length / 1e3 });
    }
    const total = layers.reduce((x, l) => x + l.ms, 0);
    console.log(JSON.stringify({ batch: a.batch, steps: a.steps, total_ms: total,
                                 run_ms: runs > warmup ? runTotal / (runs - warmup) / 1e3 : null,
                                 profile_file: files[0], layers }));
  } else {
    throw new Error('unknown mode ' + mode);
  }
}

main().catch((e) => { console.error('ort_bench.js: ' + String(e && e.message ? e.message : e)); process.exit(1); });
