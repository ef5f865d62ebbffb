"""The automatic GPU-layer choice and its reason, the CPU-library fallback, and what Ready/Loaded report."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.inference import gpu_select
from desktop.engine.library import registry
from desktop.engine.inference import protocol as P
from desktop.engine.inference.client import EngineClient, new_id
from desktop.engine.hub.fit import OVERHEAD_BYTES, VRAM_RESERVE_BYTES
from desktop.engine.inference.gpu_select import Device, LibraryInfo, ModelShape, choose_gpu_layers
from desktop.engine.hub.hardware import GPU, GiB, Hardware
from tests.fixtures import tiny_gguf

CUDA_INFO = "CPU : SSE3 = 1 | AVX2 = 1 | CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 |"
CPU_INFO = "CPU : SSE3 = 1 | AVX2 = 1 | LLAMAFILE = 1 | OPENMP = 1 |"

# A Llama-3-8B-shaped Q4 file: 32 layers, GQA 8 KV heads of 128.
LLAMA8B = ModelShape(file_size=int(4.6 * GiB), n_layer=32, n_embd=4096, n_head=32, n_head_kv=8)
SMALL = ModelShape(file_size=98_362_432, n_layer=30, n_embd=576, n_head=9, n_head_kv=3)


def cuda(free: float, total: float = 80.0, **kw) -> LibraryInfo:
    dev = Device("CUDA0", "NVIDIA H100 80GB HBM3", "gpu", int(free * GiB), int(total * GiB))
    cpu = Device("CPU", "Xeon", "cpu", 64 * GiB, 64 * GiB)
    return LibraryInfo("0.3.36", CUDA_INFO, True, ("CUDA", "CPU"), (dev, cpu), **kw)


CPU_LIB = LibraryInfo("0.3.36", CPU_INFO, False, ("CPU",), (Device("CPU", "Xeon", "cpu", GiB, GiB),))


# ----------------------------------------------------------------------------------------------- choice


def test_cpu_build_says_it_has_no_gpu_offload() -> None:
    c = choose_gpu_layers("auto", CPU_LIB, SMALL, 4096)
    assert (c.backend, c.n_gpu_layers, c.total_layers) == ("CPU", 0, 31)
    assert c.reason == "CPU: this llama.cpp build has no GPU offload"


def test_small_model_goes_all_on_the_gpu_with_the_numbers_in_the_reason() -> None:
    c = choose_gpu_layers("auto", cuda(79.1), SMALL, 2048)
    assert (c.backend, c.n_gpu_layers, c.total_layers) == ("CUDA", 31, 31)
    assert c.reason.startswith("CUDA: 31/31 layers, ") and c.reason.endswith("of 79.1 GiB free")


def test_partial_offload_follows_the_per_layer_arithmetic() -> None:
    free = 4.0 * GiB
    c = choose_gpu_layers("auto", cuda(4.0, 8.0), LLAMA8B, 8192)
    kv_layer = 2 * 8 * 128 * 8192 * 2  # K and V, 8 KV heads x 128, f16
    per_layer = LLAMA8B.file_size / 33 + kv_layer * 32 / 33
    expected = int((free - VRAM_RESERVE_BYTES - OVERHEAD_BYTES) // per_layer)
    assert 0 < expected < 33
    assert (c.backend, c.n_gpu_layers, c.total_layers) == ("CUDA", expected, 33)
    assert c.reason.startswith(f"CUDA: {expected}/33 layers (") and c.reason.endswith("the rest on the CPU")


def test_a_longer_context_leaves_room_for_fewer_layers() -> None:
    short = choose_gpu_layers("auto", cuda(6.0, 8.0), LLAMA8B, 4096)
    long = choose_gpu_layers("auto", cuda(6.0, 8.0), LLAMA8B, 65536)
    assert 0 < long.n_gpu_layers < short.n_gpu_layers
    q8 = choose_gpu_layers("auto", cuda(6.0, 8.0), LLAMA8B, 65536, kv_type="q8_0")
    assert q8.n_gpu_layers > long.n_gpu_layers  # a quantized KV cache takes less room per layer


def test_too_little_vram_falls_to_cpu_and_says_why() -> None:
    c = choose_gpu_layers("auto", cuda(1.2, 2.0), LLAMA8B, 4096)
    assert (c.backend, c.n_gpu_layers) == ("CPU", 0)
    assert "1.2 GiB of VRAM free, too little for one layer" in c.reason


def test_nvml_numbers_are_used_when_ggml_reports_no_device_memory() -> None:
    lib = LibraryInfo("0.3.36", CUDA_INFO, True, ("CUDA", "CPU"), ())
    hw = Hardware(32 * GiB, 30 * GiB, 8, (GPU(0, "RTX 4090", "nvidia", 24 * GiB, 20 * GiB),))
    c = choose_gpu_layers("auto", lib, LLAMA8B, 8192, hw=hw)
    assert (c.n_gpu_layers, c.details["free"]) == (33, 20 * GiB)
    assert c.reason.endswith("of 20.0 GiB free")
    unknown = choose_gpu_layers("auto", lib, LLAMA8B, 8192, hw=None)
    assert (unknown.n_gpu_layers, unknown.reason) == (33, "CUDA: 33/33 layers (free VRAM unknown)")


def test_explicit_layer_counts_win_over_auto() -> None:
    assert choose_gpu_layers(0, cuda(79), SMALL, 2048).reason == "CPU: GPU offload is off (gpu_layers: 0)"
    ten = choose_gpu_layers(10, cuda(79), SMALL, 2048)
    assert (ten.backend, ten.n_gpu_layers, ten.reason) == ("CUDA", 10, "CUDA: 10/31 layers (set by the profile)")
    assert choose_gpu_layers(-1, cuda(79), SMALL, 2048).n_gpu_layers == 31
    assert choose_gpu_layers(999, cuda(79), SMALL, 2048).n_gpu_layers == 31
    assert choose_gpu_layers(10, CPU_LIB, SMALL, 2048).n_gpu_layers == 0  # a CPU build cannot offload any


def test_a_gpu_build_without_a_usable_device_says_so() -> None:
    lib = LibraryInfo("0.3.36", CUDA_INFO, False, ("CUDA", "CPU"), (Device("CPU", "Xeon", "cpu", GiB, GiB),))
    c = choose_gpu_layers("auto", lib, SMALL, 2048)
    assert (c.backend, c.reason) == ("CPU", "CPU: the CUDA library found no usable GPU")


def test_metal_on_unified_memory() -> None:
    mtl = Device("MTL0", "Apple M2 Max", "gpu", int(48 * GiB), int(48 * GiB))
    lib = LibraryInfo("0.3.36", "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 |", True, ("Metal", "BLAS", "CPU"), (mtl,))
    c = choose_gpu_layers("auto", lib, LLAMA8B, 8192)
    assert (c.backend, c.n_gpu_layers) == ("Metal", 33)


def test_a_library_fallback_is_named_in_the_reason() -> None:
    lib = LibraryInfo("0.3.36", CPU_INFO, False, ("CPU",), (), fallback_reason="libcuda.so.1: cannot open shared object")
    c = choose_gpu_layers("auto", lib, SMALL, 2048)
    assert c.backend == "CPU"
    assert c.reason == ("CPU: the GPU library failed to load, using the CPU build "
                        "(libcuda.so.1: cannot open shared object)")
    # a fallback onto another GPU library keeps the GPU and still says what happened
    gpu = choose_gpu_layers("auto", cuda(79, fallback_reason="file too short"), SMALL, 2048)
    assert gpu.backend == "CUDA" and gpu.reason.endswith("(the first library failed to load: file too short)")


def test_model_shape_from_a_real_gguf_header(llama3_ok) -> None:
    report = gguf_doctor.inspect(llama3_ok.path)
    shape = ModelShape.from_report(report)
    assert (shape.n_layer, shape.n_head, shape.n_head_kv) == (2, 4, 2)
    assert shape.file_size == os.path.getsize(llama3_ok.path)
    head_dim = shape.n_embd // shape.n_head
    assert shape.kv_bytes_per_layer(1000) == 2 * 2 * head_dim * 1000 * 2
    assert shape.kv_bytes_per_layer(1000, "q4_0") < shape.kv_bytes_per_layer(1000, "q8_0") < shape.kv_bytes_per_layer(1000)


def test_gemma3_shape_uses_key_length_and_the_sliding_window(tmp_path: Path) -> None:
    m = tiny_gguf.make_gemma3(tmp_path / "g.gguf")
    shape = ModelShape.from_report(gguf_doctor.inspect(m.path))
    assert (shape.head_dim, shape.n_embd // shape.n_head) == (64, 8)
    assert (shape.sliding_window, shape.swa_layers) == (256, 5)
    # 2 KV heads x (64 + 64) x 2 B per cell; llama-cpp-python's default gives every layer the whole context
    assert shape.kv_bytes(4096) == 6 * 4096 * 2 * 128 * 2
    assert shape.kv_bytes(4096, swa_full=False) == (4096 + 5 * 768) * 2 * 128 * 2


def test_flash_attention_off_leaves_room_for_fewer_layers_at_long_contexts() -> None:
    shape = ModelShape(int(4.6 * GiB), 32, 4096, 32, 8, n_vocab=128256)
    on = choose_gpu_layers("auto", cuda(24.0, 24.0), shape, 65536, flash_attn="auto")
    off = choose_gpu_layers("auto", cuda(24.0, 24.0), shape, 65536, flash_attn=False)
    assert on.n_gpu_layers == 33  # 8 GiB of KV + 4.6 GiB of weights fit in 24 GiB
    # without flash attention llama.cpp needs 65536 x 512 x (32 x 4 + 8) B = 4.25 GiB of attention scratch
    grew = off.details["need_all"] - on.details["need_all"]
    assert grew == shape.overhead(65536, False) - shape.overhead(65536, "auto")
    assert 3.5 * GiB < grew < 4.25 * GiB  # less what the 1 GiB floor and the reused logits buffer hid
    big = choose_gpu_layers("auto", cuda(14.0, 24.0), shape, 65536, flash_attn=False)
    small = choose_gpu_layers("auto", cuda(14.0, 24.0), shape, 65536, flash_attn="on")
    assert big.n_gpu_layers < small.n_gpu_layers


# ----------------------------------------------------------------------------------------------- libraries


def _fake_lib(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "libllama.so").write_bytes(b"not a library")
    return d


def test_cpu_fallback_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = gpu_select.llama_package_dir()
    assert pkg is not None and (pkg / "lib").is_dir()
    monkeypatch.delenv("DESKTOP_CHAT_CPU_LIB_PATH", raising=False)
    # the package's own lib failed and no lib-cpu copy is installed: nothing to fall back to
    if not (pkg / "lib-cpu").is_dir():
        assert gpu_select.cpu_fallback_dir(None) is None
    # an explicit LLAMA_CPP_LIB_PATH failed: the package's own libraries
    assert gpu_select.cpu_fallback_dir(tmp_path / "broken") in (pkg / "lib-cpu", pkg / "lib")
    cpu = _fake_lib(tmp_path / "cpu")
    monkeypatch.setenv("DESKTOP_CHAT_CPU_LIB_PATH", str(cpu))
    assert gpu_select.cpu_fallback_dir(tmp_path / "broken") == cpu
    assert gpu_select.cpu_fallback_dir(cpu) != cpu  # never the one that just failed


# ----------------------------------------------------------------------------------------------- engine


@pytest.fixture
def broken_lib_client(tmp_path: Path) -> Iterator[EngineClient]:
    """An engine whose LLAMA_CPP_LIB_PATH points at a library that cannot load (like CUDA without a driver)."""
    broken = _fake_lib(tmp_path / "broken-gpu-lib")
    env = {k: v for k, v in os.environ.items() if k != "DESKTOP_CHAT_CPU_LIB_PATH"}
    env["LLAMA_CPP_LIB_PATH"] = str(broken)
    c = EngineClient(env=env)
    yield c
    c.close()


def test_engine_falls_back_to_the_cpu_library_and_says_why(broken_lib_client: EngineClient, spm_model) -> None:
    c = broken_lib_client
    loaded = c.load(registry.load_request(None, spm_model.path, new_id("load"), n_ctx=512), timeout=120)
    assert c.ready is not None and "libllama.so" in c.ready.lib_fallback
    assert "broken-gpu-lib" not in c.ready.lib_fallback  # the reason names the file, not the whole path
    assert loaded.backend == "CPU" and loaded.n_gpu_layers == 0
    assert loaded.gpu_reason.startswith("CPU: the GPU library failed to load, using the CPU build (")
    gen = registry.generate_request(None, [{"role": "user", "content": "hello"}], new_id("gen"), temperature=0.0,
                                  max_tokens=16, seed=1)
    fin = [ev for ev in c.generate(gen, timeout=60)][-1]
    assert isinstance(fin, P.Finished) and fin.text == spm_model.expected_text
    assert fin.stats.backend == "CPU"


def test_ready_and_loaded_report_backend_devices_and_reason(spm_model) -> None:
    with EngineClient() as c:
        loaded = c.load(registry.load_request(None, spm_model.path, new_id("load"), n_ctx=512), timeout=120)
        ready = c.ready
    assert ready is not None and "CPU" in ready.backends and ready.lib_fallback == ""
    assert any(d["kind"] == "cpu" and d["total"] > 0 for d in ready.devices)
    assert loaded.gpu_layers_total == 3  # 2 blocks + the output layer
    assert loaded.gpu_reason.startswith(f"{loaded.backend}: ")
    if not ready.gpu_offload:
        assert loaded.gpu_reason == "CPU: this llama.cpp build has no GPU offload"
