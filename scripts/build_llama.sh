#!/usr/bin/env bash
# Build (or reuse) the llama-cpp-python wheel for one backend, and optionally install it or unpack its libraries.
#
#   scripts/build_llama.sh cpu|cuda|metal|vulkan [--install] [--extract-lib DIR] [--cmake "EXTRA ARGS"]
#
# The wheel lands in ~/.cache/desktop-chat/wheels/<variant>-<version>/ and is reused on the next call.
#   --install          pip-install it into .venv (replacing the llama.cpp build there; `make clean-venv` undoes)
#   --extract-lib DIR  unpack its llama_cpp/lib/ into DIR (one file per library: the sonames)
#
# A GPU bundle with the CPU fallback (see README "GPU builds"):
#   scripts/build_llama.sh cpu --extract-lib build/lib-cpu
#   scripts/build_llama.sh cuda --install
#   make dist DIST_CPU_LIB=build/lib-cpu && make dist-check
#
# Needs: cuda -> the CUDA toolkit (nvcc) and CUDA_ARCHITECTURES (default: what CMake finds, e.g. "native" or
# "75;80;86;89;90"); metal -> macOS on Apple silicon (Xcode command line tools); vulkan -> the Vulkan SDK
# (glslc and the loader headers, e.g. Debian's libvulkan-dev glslc).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
variant=${1:-}
shift || true
install=0; extract=""; extra=""
while [ $# -gt 0 ]; do
  case "$1" in
    --install) install=1 ;;
    --extract-lib) extract=$2; shift ;;
    --cmake) extra=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# Portable x86-64 CPU code (AVX2/FMA/F16C, no AMX: see the Makefile for why) under every variant on x86-64.
cpu_args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=ON"
if [ "$(uname -m)" = x86_64 ]; then
  cpu_args="$cpu_args -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
fi
case "$variant" in
  cpu) args="$cpu_args" ;;
  cuda) args="-DGGML_CUDA=on $cpu_args${CUDA_ARCHITECTURES:+ -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHITECTURES}" ;;
  metal) args="-DGGML_METAL=on -DGGML_METAL_EMBED_LIBRARY=on -DGGML_NATIVE=OFF -DLLAVA_BUILD=ON" ;;
  vulkan) args="-DGGML_VULKAN=on $cpu_args" ;;
  *) echo "usage: $0 cpu|cuda|metal|vulkan [--install] [--extract-lib DIR] [--cmake ARGS]" >&2; exit 2 ;;
esac
args="$args $extra"

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
dir="$HOME/.cache/desktop-chat/wheels/$variant-$VERSION-$(printf '%s' "$args" | cksum | cut -d' ' -f1)"
if ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "reusing $(ls "$dir"/llama_cpp_python-*.whl)" >&2
else
  echo "building llama-cpp-python $VERSION ($variant) with: $args" >&2
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)} \
    "$PY" -m pip wheel --no-deps --no-cache-dir -w "$dir.tmp" "llama-cpp-python==$VERSION" >&2
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
wheel=$(ls "$dir"/llama_cpp_python-*.whl)
if [ "$install" = 1 ]; then
  .venv/bin/python -m pip install --force-reinstall --no-deps "$wheel" >&2
fi
if [ -n "$extract" ]; then
  rm -rf "$extract" && mkdir -p "$extract"
  "$PY" - "$wheel" "$extract" <<'PYEOF'
import re, sys, zipfile
from pathlib import Path
wheel, out = sys.argv[1], Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        # keep the sonames (libfoo.so.0), .dylib and .dll files; skip the duplicate libfoo.so / .so.0.x.y copies
        if name.startswith("llama_cpp/lib/") and base and (re.fullmatch(r"lib.+\.so\.\d+", base)
                                                           or base.endswith((".dylib", ".dll"))):
            (out / base).write_bytes(z.read(name))
for so in out.glob("*.so.*"):  # the unversioned name llama_cpp loads, as a link to the soname
    link = out / re.sub(r"\.\d+$", "", so.name)
    if not link.exists():
        link.symlink_to(so.name)
print(out)
PYEOF
fi
echo "$wheel"
