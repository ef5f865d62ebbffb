from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from desktop.engine.errors import ProfileError, UnknownProfileError
from desktop.engine.profiles import DEFAULT_PROFILE_ID, ProfileStore, load_profile_file, ntk_rope_freq_base

SEED_IDS = {
    "gpt-oss-20b": "gguf",  # harmony: the file's own template (tests/engine/test_reasoning_profiles.py)
    "smaug-llama-3-70b-instruct": "llama3",
    "smaug-mixtral-v0.1": "mixtral",
    "llama-3-8b-instruct-gradient-1048k": "llama3",
    "upstage-llama-65b-instruct": "upstage",
    "llama-3.1-nemotron-70b-instruct": "llama31",
    "smollm2-135m-instruct": "chatml",
    "qwen2.5-vl-3b-instruct": "chatml",  # vision (tests/engine/test_vision_library.py)
    "smolvlm-256m-instruct": "gguf",
}


def test_all_bundled_profiles_load_with_the_required_ids_and_formats() -> None:
    store = ProfileStore()
    assert {p.id: p.prompt.format for p in store.all() if not p.starter} == SEED_IDS  # starters: test_starters
    assert store.default().id == DEFAULT_PROFILE_ID == "smollm2-135m-instruct"
    for p in store.all():
        assert p.name and (p.source.repo or p.source.bundled)
        assert p.source.recommended_quant in p.source.quants
        assert p.context.default <= (p.context.max or p.context.native)
        assert p.load.gpu_layers == "auto"
        assert p.prompt.stop_tokens, p.id
        assert p.notes.strip(), p.id


def test_llama3_profiles_stop_on_eot_and_carry_the_128009_fix() -> None:
    store = ProfileStore()
    for pid in ("smaug-llama-3-70b-instruct", "llama-3-8b-instruct-gradient-1048k", "llama-3.1-nemotron-70b-instruct"):
        p = store.get(pid)
        assert 128009 in p.prompt.stop_tokens
        assert "eot-128009" in p.fixes


def test_rope_settings_follow_the_cards() -> None:
    store = ProfileStore()
    up = store.get("upstage-llama-65b-instruct")
    assert up.context.native == 2048 and up.context.default == 4096
    assert up.rope.freq_base == pytest.approx(ntk_rope_freq_base(10000, 2.0, 128), abs=0.5)
    assert 20000 < up.rope.freq_base < 20500
    grad = store.get("llama-3-8b-instruct-gradient-1048k")
    assert grad.rope.freq_base is None  # read from the GGUF, never overridden
    assert grad.context.native == 1048576 and grad.context.default <= 32768
    assert store.get("llama-3.1-nemotron-70b-instruct").context.native == 131072


def _write(dirpath: Path, name: str, text: str) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    p = dirpath / name
    p.write_text(text)
    return p


def test_unknown_key_is_rejected_naming_file_and_key(tmp_path: Path) -> None:
    src = Path("model_profiles/smollm2-135m-instruct.yaml").read_text()
    data = yaml.safe_load(src)
    data["sampling"]["temprature"] = 0.3
    f = _write(tmp_path, "typo.yaml", yaml.safe_dump(data))
    with pytest.raises(ProfileError) as ei:
        load_profile_file(f)
    assert str(f) in ei.value.message and "sampling.temprature" in ei.value.message


@pytest.mark.parametrize("patch, key", [
    ({"context": {"default": "big"}}, "context.default"),
    ({"prompt": {"format": "alpaca"}}, "prompt.format"),
    ({"load": {"gpu_layers": "all"}}, "load.gpu_layers"),
    ({"prompt": {"stop_tokens": ["x"]}}, "prompt.stop_tokens[0]"),
    ({"fixes": ["eot-999"]}, "fixes[0]"),
])
def test_wrong_values_name_the_key(tmp_path: Path, patch: dict, key: str) -> None:
    data = yaml.safe_load(Path("model_profiles/smollm2-135m-instruct.yaml").read_text())
    for k, v in patch.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) else v
    f = _write(tmp_path, "bad.yaml", yaml.safe_dump(data))
    with pytest.raises(ProfileError) as ei:
        load_profile_file(f)
    assert key in ei.value.message and "bad.yaml" in ei.value.message


def test_bad_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    f = _write(tmp_path, "broken.yaml", "id: x\nname: [unclosed\n")
    with pytest.raises(ProfileError) as ei:
        load_profile_file(f)
    assert "broken.yaml" in ei.value.message and "line" in ei.value.message


def test_the_fast_yaml_path_reads_what_safe_load_reads_and_refuses_what_it_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.engine import paths
    from desktop.engine.profiles import validate

    if not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml: _safe_load is yaml.safe_load")
    used: list[object] = []
    real_load = yaml.load

    def spy(text, Loader):  # noqa: N803 - yaml's own argument name
        used.append(Loader)
        return real_load(text, Loader=Loader)

    monkeypatch.setattr(yaml, "load", spy)
    for f in sorted(paths.bundled_profiles_dir().glob("*.yaml")):
        text = f.read_text()
        expected = yaml.safe_load(text)
        used.clear()
        assert validate._safe_load(text) == expected
        assert used == [yaml.CSafeLoader]
    # No Python objects from a profile, whichever parser reads it.
    bad = tmp_path / "evil.yaml"
    bad.write_text("id: evil\nname: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ProfileError, match="evil.yaml: invalid YAML at line 2"):
        load_profile_file(bad)
    # A syntax error reads as the pure-Python parser words it.
    broken = "id: x\nstop: [1, 2\nname: y\n"
    with pytest.raises(yaml.YAMLError) as want:
        yaml.safe_load(broken)
    (tmp_path / "broken.yaml").write_text(broken)
    with pytest.raises(ProfileError) as got:
        load_profile_file(tmp_path / "broken.yaml")
    assert want.value.problem in got.value.message and "line 3" in got.value.message


def test_user_dir_overrides_and_adds(tmp_path: Path) -> None:
    user = tmp_path / "user"
    _write(user, "smollm2-135m-instruct.yaml", "id: smollm2-135m-instruct\nsampling: {temperature: 0.9}\n")
    new = yaml.safe_load(Path("model_profiles/smaug-mixtral-v0.1.yaml").read_text())
    new["id"] = "my-mixtral"
    _write(user, "my-mixtral.yaml", yaml.safe_dump(new))
    store = ProfileStore(user_dir=user)
    demo = store.get("smollm2-135m-instruct")
    assert demo.sampling.temperature == 0.9
    assert demo.sampling.top_p == 0.9  # untouched keys come from the bundled file
    assert demo.overridden_by.endswith("smollm2-135m-instruct.yaml")
    assert store.get("my-mixtral").prompt.format == "mixtral"
    with pytest.raises(UnknownProfileError):
        store.get("nope")


def test_a_malformed_user_profile_is_skipped_and_reported(tmp_path: Path) -> None:
    from desktop.engine.profiles import ProfileProblem

    user = tmp_path / "user"
    _write(user, "a-broken.yaml", "id: a-broken\nstop: [1, 2\nname: y\n")  # not YAML
    _write(user, "b-wrong.yaml", "id: b-wrong\nname: B\nsampling: {temperature: hot}\n")  # wrong type
    _write(user, "smollm2-135m-instruct.yaml", "id: smollm2-135m-instruct\nsampling: {top_k: many}\n")  # bad override
    new = yaml.safe_load(Path("model_profiles/smaug-mixtral-v0.1.yaml").read_text())
    new["id"] = "my-mixtral"
    _write(user, "my-mixtral.yaml", yaml.safe_dump(new))
    store = ProfileStore(user_dir=user)  # does not raise
    assert store.get("my-mixtral").prompt.format == "mixtral"  # the good user file still counts
    assert store.default().sampling.top_k == ProfileStore().default().sampling.top_k  # bundled, not overridden
    assert "a-broken" not in store.ids() and "b-wrong" not in store.ids()
    by_file = {Path(p.path).name: p for p in store.problems}
    assert set(by_file) == {"a-broken.yaml", "b-wrong.yaml", "smollm2-135m-instruct.yaml"}
    assert all(isinstance(p, ProfileProblem) for p in store.problems)
    assert by_file["a-broken.yaml"].key is None and "invalid YAML at line 3" in by_file["a-broken.yaml"].message
    assert by_file["b-wrong.yaml"].key == "sampling.temperature"
    assert by_file["smollm2-135m-instruct.yaml"].key == "sampling.top_k"
    # Fixing the file and reloading clears the problem.
    fixed = {**new, "id": "b-wrong", "sampling": {**new.get("sampling", {}), "temperature": 0.5}}
    _write(user, "b-wrong.yaml", yaml.safe_dump(fixed))
    (user / "a-broken.yaml").unlink()
    (user / "smollm2-135m-instruct.yaml").unlink()
    store.reload()
    assert store.problems == [] and store.get("b-wrong").sampling.temperature == 0.5


def test_a_malformed_bundled_profile_still_raises(tmp_path: Path) -> None:
    bundled = tmp_path / "bundled"
    _write(bundled, "x.yaml", "id: x\nsampling: {temperature: hot}\n")
    with pytest.raises(ProfileError, match="sampling.temperature"):
        ProfileStore(bundled_dir=bundled, user_dir=tmp_path / "none")


def test_reload_swaps_atomically_while_other_threads_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from desktop.engine.profiles import store as store_module

    store = ProfileStore()
    before = store.ids()
    real = store_module.profile_from_dict
    reloading = threading.Event()
    checked = threading.Event()

    def slow(data, file):  # a reload in progress: the reader below looks at the store right in the middle
        prof = real(data, file)
        if not reloading.is_set():
            reloading.set()
            assert checked.wait(5)
        return prof

    errors: list[BaseException] = []

    def reader() -> None:
        assert reloading.wait(5)
        try:
            store.get(DEFAULT_PROFILE_ID)  # raised UnknownProfileError when reload cleared the dict first
            assert store.ids() == before  # the whole old set, never a half-built one
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)
        finally:
            checked.set()

    t = threading.Thread(target=reader)
    t.start()
    monkeypatch.setattr(store_module, "profile_from_dict", slow)
    store.reload()
    t.join(5)
    assert not errors, errors
    assert store.get(DEFAULT_PROFILE_ID).id == DEFAULT_PROFILE_ID
