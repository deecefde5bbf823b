#!/usr/bin/env bash
# Installs the Debian 12 packages hubble builds against. Idempotent: packages already
# present are left alone; sudo is used only when not root.
# Usage: scripts/install-deps.sh [--with-torch]   (--with-torch adds python3-torch/h5py for the
#        PyTorch reference scripts; nothing in the build or the tests needs them)
set -euo pipefail
pkgs=(g++ cmake make pkg-config libeigen3-dev libhdf5-dev libstb-dev doctest-dev libbenchmark-dev
      libopenmpi-dev openmpi-bin  # data-parallel training (docs/distributed.md)
      clang-14 libfuzzer-14-dev libomp-14-dev clang-format-14)  # fuzz targets, format check (docs/hardening.md)
if [[ "${1:-}" == "--with-torch" ]]; then pkgs+=(python3-torch python3-h5py python3-numpy); fi
# ONNX: the optional hubble::onnx component and its comparisons with PyTorch (python3-onnx/-torch/-h5py)
# and ONNX Runtime (npm's onnxruntime-node, installed on exit into .deps/ by install-onnxruntime.sh).
pkgs+=(libonnx-dev libprotobuf-dev protobuf-compiler python3-onnx python3-torch python3-h5py python3-numpy)
trap 'rc=$?; if ((rc == 0)); then "$(dirname "$0")/install-onnxruntime.sh" || echo "install-deps: ONNX Runtime not installed; its test will skip"; fi' EXIT
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then echo "install-deps: all ${#pkgs[@]} packages present"; exit 0; fi
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
