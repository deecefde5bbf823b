// Runs an ONNX model in ONNX Runtime (npm's onnxruntime-node, CPU) on float32 inputs from a file
// and writes its float32 outputs: the other side of hubble's ONNX Runtime comparison test.
//   node run_onnxruntime.js MODEL.onnx INPUT.f32 N C H W OUTPUT.f32
// INPUT.f32: N*C*H*W little-endian float32, NCHW. OUTPUT.f32: the model's first output, float32.
// Finds the package through NODE_PATH (scripts/install-onnxruntime.sh installs it in .deps/).
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, n, c, h, w, output] = process.argv.slice(2);
  if (!output) throw new Error('usage: node run_onnxruntime.js MODEL.onnx INPUT.f32 N C H W OUTPUT.f32');
  const dims = [n, c, h, w].map(Number);
  const bytes = fs.readFileSync(input);
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * 4) throw new Error(`${input}: ${bytes.length} bytes, expected ${count * 4}`);
  const data = new Float32Array(bytes.buffer, bytes.byteOffset, count);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  const results = await session.run(feeds);
  const out = results[session.outputNames[0]];
  fs.writeFileSync(output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(`onnxruntime ${ort.env.versions ? JSON.stringify(ort.env.versions) : ''}: ${model} -> ${out.dims.join('x')}`);
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
