"""Random-weight Q4_0 GGUFs in a real model's shape, for speed comparisons (bench/run.py "native", bench/gpu.py).

The text they produce is noise, but the work per token is the real model's: every matrix has its real size and
quantization, the vocabulary has its real size (so the output projection and the sampler see 128,256 logits), and
the tokenizer is a working byte-level BPE (the 256 byte symbols, a Llama-3 special-token block and unreachable
filler), so any prompt tokenizes. A valid Q4_0 block is an f16 scale and 16 bytes of 4-bit weights: the scale is
kept small so that activations stay finite through every layer.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHAPES: dict[str, dict[str, int]] = {
    # Llama 3.2 1B: tied embeddings, 128k vocabulary (the shape where per-token overhead shows most on a GPU)
    "llama32-1b": dict(n_embd=2048, n_layer=16, n_head=32, n_head_kv=8, n_ff=8192, tied=1),
    "llama3-8b": dict(n_embd=4096, n_layer=32, n_head=32, n_head_kv=8, n_ff=14336, tied=0),
}


def _q4_0(rng: np.random.Generator, rows: int, cols: int, scale: float) -> np.ndarray:
    """``rows`` x ``cols`` weights as raw Q4_0 blocks: (rows, cols / 32 * 18) bytes."""
    nb = cols // 32
    raw = rng.integers(0, 256, size=(rows, nb, 18), dtype=np.uint8)
    d = np.full((rows, nb), scale, dtype=np.float16)
    raw[:, :, 0:2] = d.view(np.uint8).reshape(rows, nb, 2)
    return raw.reshape(rows, nb * 18)


def write_random_llama3(path: str | Path, shape: str = "llama32-1b", seed: int = 0) -> Path:
    """Write a Llama-3-vocabulary GGUF of ``shape`` with random Q4_0 weights; returns its path."""
    import gguf

    from tests.fixtures import tiny_gguf as T

    cfg = SHAPES[shape]
    path = Path(path)
    rng = np.random.default_rng(seed)
    n_embd, n_layer, n_head, n_kv, n_ff = (cfg[k] for k in ("n_embd", "n_layer", "n_head", "n_head_kv", "n_ff"))
    head_dim = n_embd // n_head

    v = T._Vocab()
    for ch in T._BYTE_TO_CHAR.values():
        v.add(ch)
    for piece in ("Ġthe", "Ġa", "ing", "ĊĊ"):  # a few merges, so the BPE merge table is not empty
        v.add_piece(piece, with_merges=True)
    v.fill(128000, lambda i: f"<dummy{i:06d}>")
    for text in T._llama3_special_names():
        v.add(text, T._CONTROL, 0.0)

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name(f"random-{shape}")
    w.add_vocab_size(len(v.tokens))
    w.add_context_length(131072)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(v.tokens)
    w.add_token_types(v.types)
    w.add_token_merges(v.merges)
    w.add_bos_token_id(T._LLAMA3_BOS)
    w.add_eos_token_id(T._LLAMA3_EOT)
    w.add_eot_token_id(T._LLAMA3_EOT)
    w.add_add_bos_token(True)
    w.add_chat_template(T.LLAMA3_TEMPLATE)

    q4 = gguf.GGMLQuantizationType.Q4_0
    # 1/sqrt(n) keeps each matmul's output near unit size, whatever the width
    def mat(name: str, rows: int, cols: int) -> None:
        w.add_tensor(name, _q4_0(rng, rows, cols, 0.5 / np.sqrt(cols)), raw_dtype=q4)

    ones = np.ones(n_embd, dtype=np.float32)
    mat("token_embd.weight", len(v.tokens), n_embd)
    for i in range(n_layer):
        b = f"blk.{i}"
        w.add_tensor(f"{b}.attn_norm.weight", ones)
        mat(f"{b}.attn_q.weight", n_head * head_dim, n_embd)
        mat(f"{b}.attn_k.weight", n_kv * head_dim, n_embd)
        mat(f"{b}.attn_v.weight", n_kv * head_dim, n_embd)
        mat(f"{b}.attn_output.weight", n_embd, n_head * head_dim)
        w.add_tensor(f"{b}.ffn_norm.weight", ones)
        mat(f"{b}.ffn_gate.weight", n_ff, n_embd)
        mat(f"{b}.ffn_up.weight", n_ff, n_embd)
        mat(f"{b}.ffn_down.weight", n_embd, n_ff)
    w.add_tensor("output_norm.weight", ones)
    if not cfg["tied"]:
        mat("output.weight", len(v.tokens), n_embd)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--shape", default="llama32-1b", choices=sorted(SHAPES))
    a = ap.parse_args()
    p = write_random_llama3(a.path, a.shape)
    print(f"{p}: {p.stat().st_size / 1e6:.0f} MB")
