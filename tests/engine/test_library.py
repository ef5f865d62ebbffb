"""The model library: folders, unique ids per file, imports that leave the user's file alone, undoable repairs,
renames, and the shared Hugging Face cache read but never written."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.engine import paths
from desktop.engine.errors import FixError, ModelNotFoundError
from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.gguf import repair as gguf_repair
from desktop.engine.library import registry
from tests.fixtures import tiny_gguf


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=240)


# ------------------------------------------------------------------------------------------ folders


def test_library_folders_default_env_and_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DESKTOP_CHAT_MODELS_DIR", raising=False)
    assert paths.download_dir() == paths.data_dir() / "library"
    assert paths.library_dirs() == [paths.data_dir() / "library"]
    paths.save_library_settings(download_dir=tmp_path / "dl", library_dirs=[tmp_path / "more", tmp_path / "dl"])
    assert json.loads(paths.library_settings_path().read_text())["download_dir"] == str(tmp_path / "dl")
    assert paths.download_dir() == tmp_path / "dl"
    assert paths.library_dirs() == [tmp_path / "dl", tmp_path / "more"]  # the download folder first, no repeats
    monkeypatch.setenv("DESKTOP_CHAT_MODELS_DIR", str(tmp_path / "env"))  # still "where new downloads go"
    assert paths.download_dir() == tmp_path / "env" and paths.library_dirs()[0] == tmp_path / "env"
    assert paths.in_library(tmp_path / "more" / "a" / "b.gguf") and not paths.in_library(tmp_path / "x.gguf")
    assert not paths.in_library(paths.hf_hub_cache() / "models--a--b" / "blobs" / "x")
    monkeypatch.setenv("DESKTOP_CHAT_DOWNLOAD_CONNECTIONS", "2")
    assert paths.download_connections() == 2


# ------------------------------------------------------------------------------------------ imports


def test_two_files_with_the_same_name_get_their_own_ids(llama3_broken: tiny_gguf.TinyModel, tmp_path: Path) -> None:
    a = llama3_broken.path
    b = tmp_path / "other" / a.name
    b.parent.mkdir()
    shutil.copyfile(a, b)
    assert gguf_doctor.inspect(a).name == gguf_doctor.inspect(b).name  # same metadata name, same quant
    ma = registry.import_model(a)
    mb = registry.import_model(b)
    assert ma.id != mb.id  # each file its own id (and its own generated profile, library/generated.py)
    reg = registry.read_registry()
    assert reg[ma.id]["path"] == str(a) and reg[mb.id]["path"] == str(b)  # the second never replaced the first
    assert registry.import_model(a).id == ma.id and len(registry.read_registry()) == 2  # same file: same entry


def test_import_leaves_the_file_unchanged_and_repairs_at_load_time(llama3_broken: tiny_gguf.TinyModel) -> None:
    p = llama3_broken.path
    before = p.read_bytes()
    mtime = p.stat().st_mtime_ns
    m = registry.import_model(p)
    assert p.read_bytes() == before and p.stat().st_mtime_ns == mtime
    assert m.origin == "imported" and not m.repaired_in_place and not m.can_revert
    assert m.fixes and all("repaired at load time; the file is unchanged" in f for f in m.fixes)
    assert m.sha256 == sha(p) and not gguf_repair.journal_path(p).exists()
    assert {pr.code for pr in gguf_doctor.inspect(p).problems} >= {"eot_128009_not_eos"}  # still broken on disk
    # What the engine loads it with: the doctor's overrides make 128009 the end of the turn.
    assert gguf_doctor.load_overrides(gguf_doctor.inspect(p))["tokenizer.ggml.eos_token_id"] == 128009


def test_imported_unchanged_file_still_stops_at_128009(llama3_broken: tiny_gguf.TinyModel) -> None:
    pytest.importorskip("llama_cpp")
    from desktop.engine.inference import protocol as P
    from desktop.engine.inference.client import EngineClient, new_id
    from desktop.engine.profiles import ProfileStore
    from tests.fixtures.engine_run import run_generation

    before = llama3_broken.path.read_bytes()
    m = registry.import_model(llama3_broken.path)
    profile = ProfileStore().get(m.profile)
    c = EngineClient()
    try:
        c.load(registry.load_request(profile, registry.resolve_model(profile), new_id("load"), n_ctx=512))
        assert c.loaded is not None and c.loaded.kv_overrides.get("tokenizer.ggml.eos_token_id") == 128009
        gen = registry.generate_request(profile, [{"role": "user", "content": "hello"}], new_id("gen"),
                                      temperature=0.0, top_k=1, max_tokens=32, seed=1)
        chunks, fin = run_generation(c, gen, timeout=60)
    finally:
        c.close()
    assert isinstance(fin, P.Finished) and fin.stop_token == 128009 and fin.finish_reason == "stop"
    assert "".join(chunks) == llama3_broken.expected_text and "<|eot_id|>" not in "".join(chunks)
    assert llama3_broken.path.read_bytes() == before


def test_import_with_repair_is_journaled_and_revert_restores_the_exact_bytes(
        llama3_broken: tiny_gguf.TinyModel) -> None:
    p = llama3_broken.path
    original = sha(p)
    m = registry.import_model(p, repair=True)
    assert m.repaired_in_place and m.can_revert and m.source_sha256 == original and m.sha256 == sha(p) != original
    assert any(f.startswith("fixed: end-of-turn token 128009") for f in m.fixes)
    rec = gguf_repair.undo_record(p)
    assert rec and rec["state"] == "applied" and len(rec["patches"]) == 2
    assert not p.with_name(p.name + ".fixjournal").exists()  # nothing written beside the user's file
    listed = next(x for x in registry.list_installed() if x.id == m.id)
    assert listed.can_revert

    back = registry.revert_repair(m.id)
    assert sha(p) == original == back.sha256
    assert not back.repaired_in_place and not back.can_revert and not gguf_repair.has_undo(p)
    assert all("repaired at load time" in f for f in back.fixes)
    with pytest.raises(FixError, match="no repair to undo"):
        registry.revert_repair(m.id)


def test_revert_refuses_a_file_changed_since_the_repair(llama3_broken: tiny_gguf.TinyModel) -> None:
    p = llama3_broken.path
    gguf_repair.fix(p)
    off, _old, new = next(iter(gguf_repair._patches(gguf_repair.undo_record(p), p)))
    with p.open("r+b") as fh:  # someone else edited the repaired bytes
        fh.seek(off)
        fh.write(bytes(b ^ 0x55 for b in new))
    changed = p.read_bytes()
    with pytest.raises(FixError, match="changed since it was repaired"):
        gguf_repair.revert(p)
    assert p.read_bytes() == changed  # nothing written


def test_a_crash_while_applying_is_rolled_back_by_the_journal(llama3_broken: tiny_gguf.TinyModel) -> None:
    p = llama3_broken.path
    before = p.read_bytes()
    patches, changes, _ = gguf_repair._plan(p)
    gguf_repair._write_journal(p, "applying", patches, [c.description for c in changes])
    gguf_repair._apply(p, patches[:1])  # "crash" after half the edits
    assert p.read_bytes() != before and not gguf_repair.has_undo(p)  # an unfinished repair is not undoable
    assert gguf_repair.recover_journal(p) is True
    assert p.read_bytes() == before and not gguf_repair.journal_path(p).exists()


def test_gguf_fix_and_revert_on_the_command_line(llama3_broken: tiny_gguf.TinyModel) -> None:
    p = llama3_broken.path
    original = sha(p)
    r = run_cli("gguf", "fix", str(p))
    assert r.returncode == 0 and "gguf fix --revert" in r.stdout, r.stderr
    assert sha(p) != original
    r = run_cli("gguf", "fix", "--revert", str(p), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sha256"] == original == sha(p)
    r = run_cli("gguf", "fix", "--revert", str(p))
    assert r.returncode == 1 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1


def test_rename_changes_the_display_name_only(llama3_broken: tiny_gguf.TinyModel) -> None:
    m = registry.import_model(llama3_broken.path)
    renamed = registry.rename_model(m.id, "  My   tiny llama ")
    assert renamed.name == "My tiny llama" and (renamed.id, renamed.profile, renamed.path) == (m.id, m.profile, m.path)
    assert next(x for x in registry.list_installed() if x.id == m.id).name == "My tiny llama"
    assert registry.import_model(llama3_broken.path).name == "My tiny llama"  # a re-import keeps the name
    with pytest.raises(ModelNotFoundError):
        registry.rename_model("no-such-model", "x")


# ------------------------------------------------------------------------------------------ the HF cache


def _put_in_hf_cache(src: Path, repo: str, name: str) -> tuple[Path, Path]:
    """Lay a file out as huggingface_hub does: blobs/<sha256>, snapshots/<commit>/<name> -> blob, refs/main."""
    root = paths.hf_hub_cache() / f"models--{repo.replace('/', '--')}"
    blob = root / "blobs" / sha(src)
    blob.parent.mkdir(parents=True)
    shutil.copyfile(src, blob)
    snap = root / "snapshots" / ("c" * 40) / name
    snap.parent.mkdir(parents=True)
    snap.symlink_to(os.path.relpath(blob, snap.parent))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("c" * 40)
    return blob, snap


def test_hf_cache_ggufs_are_listed_used_in_place_and_never_written(llama3_broken: tiny_gguf.TinyModel) -> None:
    blob, snap = _put_in_hf_cache(llama3_broken.path, "acme/Tiny-Llama-3-GGUF", "tiny-llama3.Q8_0.gguf")
    before = {p: (p.name, p.read_bytes() if p.is_file() else None) for p in blob.parent.parent.rglob("*")}
    found = [m for m in registry.list_installed() if m.origin == "hf-cache"]
    assert len(found) == 1 and found[0].path == str(snap) and found[0].quant == "Q8_0"
    assert found[0].source_repo == "acme/Tiny-Llama-3-GGUF" and not found[0].can_revert

    renamed = registry.rename_model(found[0].id, "cached llama")  # lives in the registry, not in the cache
    assert renamed.name == "cached llama" and renamed.origin == "hf-cache"
    r = run_cli("gguf", "fix", str(snap))
    assert r.returncode == 1 and "shared Hugging Face cache" in r.stderr
    with pytest.raises(FixError):
        registry.revert_repair(found[0].id)
    registry.remove_model(found[0].id)
    assert snap.is_file()  # unregistered only
    after = {p: (p.name, p.read_bytes() if p.is_file() else None) for p in blob.parent.parent.rglob("*")}
    assert after == before and sha(blob) == blob.name  # same names, same bytes


def test_a_profile_runs_on_the_hf_cache_copy_where_it_is(llama3_broken: tiny_gguf.TinyModel) -> None:
    from desktop.engine.profiles import ProfileStore

    store = ProfileStore()
    profile = store.get("llama-3-8b-instruct-gradient-1048k")
    blob, snap = _put_in_hf_cache(llama3_broken.path, profile.source.repo, "llama-3-8b-instruct-1048k.Q4_K_M.gguf")
    assert registry.resolve_model(profile) == snap  # used where it is: no "verify first" detour, no copy
    listed = next(m for m in registry.list_installed(store) if m.origin == "hf-cache")
    assert listed.profile == profile.id  # matched to the profile by repo and quant
    # Loading repairs it through kv_overrides; the request carries no path into the library.
    req = registry.load_request(profile, snap, "load-1")
    assert req.model_path == str(snap) and req.apply_doctor_overrides
    assert gguf_doctor.load_overrides(gguf_doctor.inspect(snap))["tokenizer.ggml.eos_token_id"] == 128009
    assert sha(blob) == blob.name and not list(paths.download_dir().rglob("*"))
