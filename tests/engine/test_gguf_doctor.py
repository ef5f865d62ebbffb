from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.gguf import repair as gguf_repair
from desktop.engine.errors import FixError, GGUFError
from tests.fixtures import tiny_gguf


def _codes(rep: gguf_doctor.Report) -> set[str]:
    return {p.code for p in rep.problems}


def test_broken_llama3_is_diagnosed(llama3_broken) -> None:
    rep = gguf_doctor.inspect(llama3_broken.path)
    assert rep.is_llama3_vocab and rep.vocab_size == 128256
    assert rep.eos.id == 128001
    # no eot_token_id in the metadata: found by its text, as llama.cpp does
    assert (rep.eot.id, rep.eot.text, rep.eot_source) == (128009, "<|eot_id|>", "text")
    assert {"eot_128009_not_eos", "eot_128009_not_control"} <= _codes(rep)
    assert rep.architecture == "llama" and rep.has_chat_template and rep.pre_tokenizer == "llama-bpe"
    d = rep.to_dict()
    assert all({"code", "message"} <= set(p) for p in d["problems"])


def test_healthy_llama3_has_no_problems(llama3_ok) -> None:
    rep = gguf_doctor.inspect(llama3_ok.path)
    assert rep.eos.id == 128009 and rep.eos.type == "CONTROL"
    assert _codes(rep) == set()


def test_missing_pre_and_template_are_reported(tmp_path: Path) -> None:
    m = tiny_gguf.make_llama3(tmp_path / "x.gguf", pre=None, chat_template=None)
    codes = _codes(gguf_doctor.inspect(m.path))
    assert {"missing_pre_tokenizer", "missing_chat_template"} <= codes
    assert gguf_doctor.load_overrides(gguf_doctor.inspect(m.path))["tokenizer.ggml.pre"] == "llama-bpe"


def test_expert_layouts(mixtral_model, mixtral_old, spm_model) -> None:
    new = gguf_doctor.inspect(mixtral_model.path)
    assert new.expert_count >= 2 and new.expert_layout == "merged" and "mixtral_old_expert_layout" not in _codes(new)
    old = gguf_doctor.inspect(mixtral_old.path)
    assert old.expert_layout == "separate" and "mixtral_old_expert_layout" in _codes(old)
    spm = gguf_doctor.inspect(spm_model.path)
    assert spm.vocab_size == 32000 and spm.expert_count == 0 and not spm.is_llama3_vocab


def test_split_shard_is_recognised(llama3_ok, tmp_path: Path) -> None:
    p = tmp_path / "model-Q4_K_M-00002-of-00003.gguf"
    p.write_bytes(llama3_ok.path.read_bytes())
    rep = gguf_doctor.inspect(p)
    assert (rep.split_index, rep.split_count) == (2, 3) and "split_shard" in _codes(rep)


def test_bad_files_raise_clear_errors(tmp_path: Path, llama3_ok) -> None:
    with pytest.raises(GGUFError, match="no such file"):
        gguf_doctor.inspect(tmp_path / "missing.gguf")
    with pytest.raises(GGUFError, match="not a GGUF"):
        gguf_doctor.inspect(tiny_gguf.make_non_gguf(tmp_path / "junk.gguf"))
    with pytest.raises(GGUFError, match="truncated"):
        gguf_doctor.inspect(tiny_gguf.make_truncated(tmp_path / "trunc.gguf", llama3_ok.path))


@pytest.mark.parametrize("head, says", [
    (b"PK\x03\x04" + bytes(40), "it is a ZIP archive"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "it is a PNG image"),
    (b"\x8d\xcc%9\x00\xff" + bytes(40), "it does not start with the GGUF signature"),
    (b"just some notes, not a model at all\n", "it is a text file"),
    ((123).to_bytes(8, "little") + b'{"__metadata__": {}}' + bytes(20), "safetensors"),
])
def test_a_file_that_is_not_a_gguf_is_named_in_words_never_raw_bytes(tmp_path: Path, head: bytes, says: str) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(head)
    with pytest.raises(GGUFError) as ei:
        gguf_doctor.inspect(f)
    assert says in ei.value.message and "b'" not in ei.value.message and "\\x" not in ei.value.message


def test_fix_is_in_place_same_size_and_idempotent(llama3_broken) -> None:
    p = llama3_broken.path
    before = p.read_bytes()
    dry = gguf_repair.fix(p, dry_run=True)
    assert [c.key for c in dry.changes] == ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.token_type[128009]"]
    assert p.read_bytes() == before  # dry run writes nothing
    res = gguf_repair.fix(p)
    assert "fixed: end-of-turn token 128009 was not the EOS token (EOS was 128001)" in res.summary()
    after = p.read_bytes()
    assert len(after) == len(before)
    diff = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert 1 <= len(diff) <= 8  # two same-size scalar edits, nothing else
    rep = gguf_doctor.inspect(p)
    assert rep.eos.id == 128009 and _codes(rep) == set()
    h = hashlib.sha256(after).hexdigest()
    again = gguf_repair.fix(p)
    assert again.changes == [] and hashlib.sha256(p.read_bytes()).hexdigest() == h
    assert not p.with_name(p.name + ".fixjournal").exists()


def test_a_failed_fix_leaves_the_original_bytes(llama3_broken, monkeypatch: pytest.MonkeyPatch) -> None:
    p = llama3_broken.path
    before = p.read_bytes()
    real = gguf_doctor.inspect
    calls = {"n": 0}

    def flaky(path, **kw):
        calls["n"] += 1
        if calls["n"] >= 2:  # the verification read after patching
            raise GGUFError("simulated failure while verifying")
        return real(path, **kw)

    monkeypatch.setattr(gguf_doctor, "inspect", flaky)
    with pytest.raises(FixError, match="original bytes were restored"):
        gguf_repair.fix(p)
    assert p.read_bytes() == before


def test_an_interrupted_fix_is_rolled_back_from_its_journal(llama3_broken) -> None:
    p = llama3_broken.path
    before = p.read_bytes()
    patches, _changes, _rep = gguf_repair._plan(p)
    import json

    journal = p.with_name(p.name + ".fixjournal")
    journal.write_text(json.dumps([{"offset": o, "old": a.hex(), "new": b.hex()} for o, a, b in patches]))
    gguf_repair._apply(p, patches[:1])  # "crash" after half the edits
    assert p.read_bytes() != before
    assert gguf_repair.recover_journal(p) is True
    assert p.read_bytes() == before and not journal.exists()


def test_reports_are_cached_on_disk_and_invalidated_by_a_change(llama3_broken, monkeypatch) -> None:
    first = gguf_doctor.inspect(llama3_broken.path)
    gguf_doctor._CACHE.clear()  # as in a new engine process

    def no_read(_p):
        raise AssertionError("the file was parsed again")

    monkeypatch.setattr(gguf_doctor, "_inspect", no_read)
    again = gguf_doctor.inspect(llama3_broken.path)
    assert again.to_dict() == first.to_dict() and again.patch_slots == first.patch_slots
    assert [p.code for p in again.problems] == [p.code for p in first.problems]
    monkeypatch.undo()

    gguf_repair.fix(llama3_broken.path)  # changes the bytes and the mtime
    gguf_doctor._CACHE.clear()
    after = gguf_doctor.inspect(llama3_broken.path)
    assert not [p for p in after.problems if p.code.startswith("eot_128009")]


def test_the_reader_sees_exactly_what_stock_gguf_py_sees_through_a_plain_view(llama3_broken, mixtral_model) -> None:
    """The doctor reads through a plain ndarray view of gguf-py's memmap (3x faster on a real vocab): every
    field, offset and tensor must match the stock reader's, and the fix must land the same bytes."""
    import gguf
    import numpy as np

    for path in (llama3_broken.path, mixtral_model.path):
        ours, stock = gguf_doctor.open_reader(path), gguf.GGUFReader(path)
        assert type(ours.data) is np.ndarray and isinstance(ours.data.base, np.memmap)  # the fast path is on
        assert [(f.name, f.offset, f.types, f.data, [p.tobytes() for p in f.parts]) for f in ours.fields.values()] \
            == [(f.name, f.offset, f.types, f.data, [p.tobytes() for p in f.parts]) for f in stock.fields.values()]
        assert [(t.name, int(t.data_offset), t.data.tobytes()) for t in ours.tensors] \
            == [(t.name, int(t.data_offset), t.data.tobytes()) for t in stock.tensors]
    before = gguf.GGUFReader(llama3_broken.path)
    eot = before.fields["tokenizer.ggml.token_type"]
    assert gguf_repair.fix(llama3_broken.path).changes
    after = gguf.GGUFReader(llama3_broken.path)  # stock gguf-py confirms the patch
    assert int(after.fields["tokenizer.ggml.token_type"].parts[eot.data[128009]][0]) == gguf_doctor.CONTROL


def _typed_gguf(path: Path, file_type: int | None) -> Path:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    if file_type is not None:
        w.add_uint32("general.file_type", file_type)
    w.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("number,name", [(7, "Q8_0"), (0, "ALL_F32"), (15, "Q4_K_M"), (9999, "type 9999"),
                                         (None, None)])
def test_the_file_type_is_named_as_llama_cpp_names_it_from_the_first_bytes(tmp_path: Path, number, name) -> None:
    from desktop.engine.gguf import header

    path = _typed_gguf(tmp_path / "m.gguf", number)
    assert header.read_file_type(path, 4096) == name
    assert gguf_doctor.inspect(path).file_type == name  # the doctor's report reads the key the same one way


def test_an_unreadable_file_has_no_file_type(tmp_path: Path) -> None:
    from desktop.engine.gguf import header

    assert header.read_file_type(tiny_gguf.make_non_gguf(tmp_path / "x.gguf"), 4096) is None
    assert header.read_file_type(tmp_path / "missing.gguf", 4096) is None
