#!/usr/bin/env bash
# Installs ONNX Runtime for Node.js (npm's onnxruntime-node, which carries its CPU library) into
# .deps/onnxruntime (git-ignored), for the ONNX Runtime comparison test (tests/onnx/).
# --ignore-scripts: the package's install script only downloads GPU parts, and fails offline.
# Idempotent; exits 0 with a message when node/npm are absent (the test then skips).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/onnxruntime"
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  if command -v apt-get >/dev/null && ! command -v node >/dev/null; then  # Debian's node 18 runs onnxruntime-node
    echo "install-onnxruntime: installing nodejs npm"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm || true
  fi
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "install-onnxruntime: node/npm not found; the ONNX Runtime comparison test will skip"; exit 0
  fi
fi
if [[ -f "$dest/node_modules/onnxruntime-node/package.json" ]]; then
  echo "install-onnxruntime: present in $dest"; exit 0
fi
mkdir -p "$dest"
cd "$dest"
[[ -f package.json ]] || echo '{"name": "hubble-onnxruntime", "private": true}' > package.json
npm install --ignore-scripts --no-audit --no-fund onnxruntime-node
echo "install-onnxruntime: installed into $dest"
