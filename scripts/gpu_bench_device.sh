#!/usr/bin/env bash
# Run ON the device machine (an NVIDIA H200, no registry), from the repo root, with .gpu carried
# (scripts/gpu_carry.sh prepares it here). One call does it all, inside the 10-minute limit of one command:
#   1. builds llama.cpp with CUDA (sm_90) as shared libraries plus llama-bench and llama-completion (~3 min on 16
#      cores), and puts the libraries where llama-cpp-python's bindings load them (llama_cpp/lib);
#   2. `bench/gpu.py`: app ÷ raw llama-cpp-python on the scripted shapes, then app ÷ llama-completion and
#      app ÷ llama-bench tg on random-weight Llama-3.2-1B and Llama-3-8B shapes (Q4_0, all layers offloaded);
#   3. `bench/_ctx1m.py`: a Llama-3-8B-shaped GGUF at n_ctx 1,048,576 with flash attention and a q8_0 KV cache:
#      the app's estimate, then a load and a decode through the engine's LlamaBackend.
# Results land in $OUT (results-gpu.json, ctx1m.json, the logs); copy results-gpu.json to bench/ and run
# `make bench` here to fold it into bench/RESULTS.md.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
G=$PWD/.gpu
B=/tmp/llama-build
SITE=/tmp/site
exec > >(tee "$OUT/device.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
t0=$(date +%s)
cmake -S "$G/llama.cpp" -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON -DGGML_NATIVE=OFF > "$OUT/cmake.log" 2>&1 \
  || { tail -40 "$OUT/cmake.log"; exit 1; }
cmake --build "$B" -j "$(nproc)" --target llama ggml llama-bench llama-completion > "$OUT/build.log" 2>&1 \
  || { tail -60 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
rm -rf "$SITE" && mkdir -p "$SITE" && cp -r "$G/site/." "$SITE/"
mkdir -p "$SITE/llama_cpp/lib"
find "$B" -name "*.so*" \( -type f -o -type l \) -exec cp -P {} "$SITE/llama_cpp/lib/" \;
ls "$SITE/llama_cpp/lib"
export PYTHONPATH="$SITE:$PWD" LLAMA_TOOLS_BIN="$B/bin" PYTHONUNBUFFERED=1 BENCH_MODELS_DIR=/tmp/bench-models
python3 -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'GPU offload:', llama_cpp.llama_supports_gpu_offload())"
timeout 330 python3 bench/gpu.py --pairs 4 --out "$OUT/results-gpu.json" || echo "bench/gpu.py: exit $?"
timeout 150 python3 bench/_ctx1m.py --out "$OUT/ctx1m.json" || echo "bench/_ctx1m.py: exit $?"
echo "total: $(( $(date +%s) - t0 )) s"
