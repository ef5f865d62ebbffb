#!/usr/bin/env bash
# Prepare, on this machine, what a GPU session carries to the device machine (it reaches no package registry):
# a pruned copy of the llama.cpp that llama-cpp-python vendors (the CPU and CUDA back-ends, libllama, common and
# the tools), llama-cpp-python's own Python package (its ctypes bindings; the libraries are built there), and
# gguf-py from the same tree (bench/_random_gguf.py writes the random-weight models with it).
#
#   scripts/gpu_carry.sh        -> .gpu/ (ignored by git through .git/info/exclude), about 30 MB
#
# Then, with the device tool: run(command="bash scripts/gpu_bench_device.sh", carry=[".gpu"], timeout_s=590).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sdist=${LLAMA_SDIST:-}
if [ -z "$sdist" ]; then
  "$PY" -m pip download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$work" >&2
  sdist=$(ls "$work"/llama_cpp_python-*.tar.gz)
fi
tar xzf "$sdist" -C "$work"
top=$(ls -d "$work"/llama_cpp_python-*/)
rm -rf .gpu && mkdir -p .gpu/site
cp -r "$top/llama_cpp" .gpu/site/llama_cpp
src="$top/vendor/llama.cpp"
cp -r "$src/gguf-py/gguf" .gpu/site/gguf
mkdir -p .gpu/llama.cpp
for d in CMakeLists.txt cmake ggml src include common vendor tools licenses LICENSE; do
  cp -r "$src/$d" .gpu/llama.cpp/
done
# Back-ends the H200 build does not use, the web UI and the server (LLAMA_BUILD_SERVER=OFF): half the size.
for b in cann et hexagon metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn; do
  rm -rf ".gpu/llama.cpp/ggml/src/ggml-$b"
done
rm -rf .gpu/llama.cpp/tools/ui .gpu/llama.cpp/tools/server
printf '%s\n' "llama-cpp-python $VERSION" > .gpu/VERSION
du -sh .gpu
