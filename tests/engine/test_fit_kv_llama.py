"""The KV estimate against llama.cpp's own numbers: load tiny scripted GGUFs of each shape with llama-cpp-python
(verbose) and compare the "llama_kv_cache: size = X MiB (N cells, L layers ...)" lines it logs with
``fit.Arch.kv_bytes`` for the same context, KV type and sliding-window setting. Also: flash attention off
makes llama.cpp's compute buffer grow with the context, as ``fit.compute_bytes`` says."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.hub import fit
from desktop.engine.inference.gpu_select import ModelShape
from tests.fixtures import tiny_gguf

pytest.importorskip("llama_cpp")

_SCRIPT = r"""
import json, sys, llama_cpp
args = json.loads(sys.argv[1])
kw = dict(model_path=args["path"], n_ctx=args["n_ctx"], n_gpu_layers=0, verbose=True, n_threads=1,
          flash_attn=args["fa"], swa_full=args["swa_full"], n_batch=512, n_ubatch=512)
if args["kv"] != "f16":
    t = {"q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}[args["kv"]]
    kw["type_k"] = kw["type_v"] = t
llm = llama_cpp.Llama(**kw)
llm.close()
"""
_KV = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers")
_COMPUTE = re.compile(r"CPU compute buffer size = +([\d.]+) MiB")


def llama_cpp_numbers(path: Path, n_ctx: int, kv: str = "f16", fa: bool = True, swa_full: bool = True) -> dict:
    arg = json.dumps({"path": str(path), "n_ctx": n_ctx, "kv": kv, "fa": fa, "swa_full": swa_full})
    r = subprocess.run([sys.executable, "-c", _SCRIPT, arg], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    caches = [(float(m[0]), int(m[1]), int(m[2])) for m in _KV.findall(r.stderr)]
    assert caches, r.stderr[-2000:]
    compute = [float(m) for m in _COMPUTE.findall(r.stderr)]
    return {"kv_mib": sum(c[0] for c in caches), "caches": caches, "compute_mib": max(compute) if compute else None}


def arch_of(path: Path) -> fit.Arch:
    a = ModelShape.from_report(gguf_doctor.inspect(path)).arch()
    assert a is not None
    return a


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("kv")
    return {
        "llama3": tiny_gguf.make_llama3(d / "llama3.gguf").path,  # GQA 8 heads / 2 KV heads
        "mixtral": tiny_gguf.make_mixtral(d / "mixtral.gguf").path,  # MoE, GQA
        "gemma3": tiny_gguf.make_gemma3(d / "gemma3.gguf").path,  # key_length 64 != n_embd / n_head, SWA 256
    }


# (quantized caches need rows of 32 values: only the Gemma shape's 64-wide heads have them)
@pytest.mark.parametrize("name,n_ctx,kv", [
    ("llama3", 4096, "f16"), ("llama3", 16384, "f16"), ("mixtral", 4096, "f16"),
    ("gemma3", 4096, "f16"), ("gemma3", 4096, "q8_0"), ("gemma3", 8192, "q4_0"),
])
def test_kv_size_matches_llama_cpp(models, name, n_ctx, kv):
    got = llama_cpp_numbers(models[name], n_ctx, kv)
    ours = arch_of(models[name]).kv_bytes(n_ctx, kv, swa_full=True)
    assert ours == pytest.approx(got["kv_mib"] * 2**20, rel=0.005), (got, ours)


def test_sliding_window_cells_match_llama_cpp(models):
    a = arch_of(models["gemma3"])
    assert (a.sliding_window, a.swa_layers, a.head_dim) == (256, 5, 64)
    got = llama_cpp_numbers(models["gemma3"], 8192, swa_full=False)
    # one full cache for the dense layer, one windowed cache for the 5 sliding-window layers
    assert sorted((cells, layers) for _, cells, layers in got["caches"]) == [(768, 5), (8192, 1)]
    assert a.kv_cells(8192, swa_full=False) == 8192 + 5 * 768
    assert a.kv_bytes(8192, swa_full=False) == pytest.approx(got["kv_mib"] * 2**20, rel=0.005)
    full = llama_cpp_numbers(models["gemma3"], 8192, swa_full=True)
    assert a.kv_bytes(8192, swa_full=True) == pytest.approx(full["kv_mib"] * 2**20, rel=0.005)
    assert full["kv_mib"] > 4 * got["kv_mib"]


@pytest.mark.parametrize("name,n_ctx,fa", [
    ("gemma3", 16384, False), ("gemma3", 65536, False), ("gemma3", 65536, True), ("gemma3", 2048, False),
    ("llama3", 16384, False), ("llama3", 16384, True),  # a 128k vocabulary: the logits are the peak
])
def test_compute_buffer_matches_llama_cpp(models, name, n_ctx, fa):
    got = llama_cpp_numbers(models[name], n_ctx, fa=fa)["compute_mib"]
    assert got is not None
    ours = fit.compute_bytes(arch_of(models[name]), n_ctx, fa)
    assert ours == pytest.approx(got * 2**20, rel=0.05, abs=4 * 2**20), (got, ours / 2**20)


def test_without_flash_attention_the_compute_buffer_grows_with_the_context(models):
    off = [llama_cpp_numbers(models["gemma3"], n, fa=False)["compute_mib"] for n in (16384, 65536)]
    on = [llama_cpp_numbers(models["gemma3"], n, fa=True)["compute_mib"] for n in (16384, 65536)]
    # 4 heads: (4 x 4 + 8) B per cell and batch token without flash attention, 4 B (the mask) with it
    assert (off[1] - off[0]) / (on[1] - on[0]) == pytest.approx(6, rel=0.02)
