#!/usr/bin/env bash
# Build llama.cpp's own `llama-bench` and `llama-completion` from the llama.cpp that llama-cpp-python vendors, with
# the same CPU flags as the app's wheel (the Makefile's LLAMA_CMAKE_ARGS), so `make bench` can set the app's decode
# speed beside llama.cpp's own on the same machine and the same code.
#
#   scripts/build_llama_tools.sh            -> prints the bin directory (building it on the first call)
#   scripts/build_llama_tools.sh --check    -> prints it if it is built, else exits 1 (builds nothing)
#
# Knobs (environment):
#   LLAMA_CPP_VERSION   llama-cpp-python version whose sdist is fetched (default 0.3.36, as in the Makefile)
#   LLAMA_CMAKE_ARGS    CMake flags (default: the Makefile's portable x86-64-v3 set on x86-64)
#   LLAMA_TOOLS_DIR     cache root (default ~/.cache/desktop-chat/llama-tools); one folder per version + flags
#   LLAMA_SDIST         an already downloaded llama_cpp_python-<version>.tar.gz (skips `pip download`)
#   NICE                prefix for the compiler (default "nice -n 19": the build must not starve other work)
#
# The binaries are linked statically against llama/ggml (BUILD_SHARED_LIBS=OFF), so they never pick up the venv's
# libllama.so; only the CPU backend is built unless LLAMA_CMAKE_ARGS asks for another.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
if [ -z "${LLAMA_CMAKE_ARGS:-}" ]; then
  LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF"
  if [ "$(uname -m)" = x86_64 ]; then
    LLAMA_CMAKE_ARGS="$LLAMA_CMAKE_ARGS -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  fi
fi
# LLAVA_BUILD / MTMD_BUILD are llama-cpp-python's own options; llama.cpp's CMake does not know them.
args=""
for a in $LLAMA_CMAKE_ARGS; do
  case "$a" in -DLLAVA_BUILD=*|-DMTMD_BUILD=*) ;; *) args="$args $a" ;; esac
done
args=${args# }
root=${LLAMA_TOOLS_DIR:-$HOME/.cache/desktop-chat/llama-tools}
key=$(printf '%s %s' "$VERSION" "$args" | cksum | cut -d' ' -f1)
out="$root/$VERSION-$key"
NICE=${NICE-nice -n 19}

if [ -x "$out/bin/llama-bench" ] && [ -x "$out/bin/llama-completion" ]; then
  echo "$out/bin"
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "not built yet: $out/bin (run $0)" >&2
  exit 1
fi

PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
work="$out.tmp"
rm -rf "$work" && mkdir -p "$work"
sdist=${LLAMA_SDIST:-}
if [ -z "$sdist" ]; then
  echo "fetching the llama-cpp-python $VERSION sdist" >&2
  "$PY" -m pip download -q --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$work" >&2
  sdist=$(ls "$work"/llama_cpp_python-*.tar.gz)
fi
echo "unpacking $sdist (vendor/llama.cpp only)" >&2
tar xzf "$sdist" -C "$work" --wildcards "llama_cpp_python-*/vendor/llama.cpp/*"
src=$(ls -d "$work"/llama_cpp_python-*/vendor/llama.cpp)

gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
jobs=${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
echo "configuring llama.cpp ($src) with: $args" >&2
# shellcheck disable=SC2086  # $args is a list of flags
cmake -S "$src" -B "$work/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF $args >&2
echo "building llama-bench and llama-completion ($jobs jobs, under '$NICE'; several minutes)" >&2
$NICE cmake --build "$work/build" --config Release -j "$jobs" --target llama-bench llama-completion >&2
mkdir -p "$work/bin"
for t in llama-bench llama-completion; do
  cp "$(find "$work/build" -type f -name "$t" -perm -u+x | head -n1)" "$work/bin/$t"
done
printf '%s\n%s\n' "llama-cpp-python $VERSION" "$args" > "$work/bin/BUILD_INFO"
# Keep only the binaries: the source and objects are ~1 GB.
rm -rf "$out" && mkdir -p "$out" && mv "$work/bin" "$out/bin" && rm -rf "$work"
echo "$out/bin"
