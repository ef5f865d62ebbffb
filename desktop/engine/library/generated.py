"""Profiles generated for a GGUF of unknown origin (a hub repo or a user's own file), from its metadata.

How the prompt format is chosen, in order: (1) the file's own chat template (rendered in the sandbox);
(2) a hand-written format detected from the architecture, tokenizer and special tokens (``gguf.arch``);
(3) the user's choice: without one, :class:`FormatUnknownError` carries the formats to offer. Never a
silent ChatML. The profile's notes say which it was ("template", "detected (gemma, from general.architecture
'gemma3')", "user choice"), and ``profiles show`` prints them. Stop tokens follow from the end-of-turn token
llama.cpp would find (by id, else by text) plus the other end-of-turn tokens the vocabulary holds.

Ids are unique: a generated profile never takes a bundled profile's id, nor an existing user profile's
(a second file of the same name gets "-2", "-3"...), unless it is the same file again. Runs in the caller's
process (the CLI's import, or a worker thread of the app's GUI process), never in the engine process.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from desktop.engine import paths
from desktop.engine.errors import FormatUnknownError
from desktop.engine.profiles import Profile
from desktop.engine.profiles.fields import default as _default

HEADER = "# Generated from the GGUF's own metadata; edit freely.\n"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-gguf$", "", s) or "model"


def choices() -> tuple[str, ...]:
    from desktop.engine.inference import prompts

    return prompts.HAND_FORMATS


def format_for(report: Any, user_choice: str | None = None) -> tuple[str, str]:
    """(format, where it came from) for a file: its template, a detected family, or the user's choice."""
    if user_choice:
        if user_choice not in (*choices(), "gguf"):
            raise FormatUnknownError(f"unknown prompt format {user_choice!r}; choose one of: {', '.join(choices())}",
                                     choices=choices())
        return user_choice, "user choice"
    if report.has_chat_template:
        return "gguf", "template"
    det = report.detected
    if det.get("format"):
        return det["format"], det["reason"]
    raise FormatUnknownError(
        f"{Path(report.path).name} has no chat template and its model family ({report.architecture or 'unknown'}, "
        f"{report.tokenizer_model or 'unknown'} tokenizer) does not say which prompt format it expects; "
        f"choose one of: {', '.join(choices())}", choices=choices())


def stop_tokens(report: Any) -> list[int]:
    """EOS, the end-of-turn token (by id or by text, as llama.cpp finds it) and the other turn-ending tokens."""
    from desktop.engine.gguf import arch

    ids = {t.id for t in (report.eos, report.eot) if t is not None}
    specials = report.specials
    ids |= {tid for text, tid in specials.items() if text in arch.EOG_TEXTS}
    if getattr(report, "reasoning_format", "") == "harmony":
        # <|end|> closes a harmony message, not the turn (llama.cpp drops it from the EOG list too); <|return|>
        # ends the turn and <|call|> ends it with a tool call.
        ids.discard(specials.get("<|end|>", -1))
        ids |= {specials[t] for t in ("<|return|>", "<|call|>") if t in specials}
    if report.is_llama3_vocab:
        ids.add(128009)
    return sorted(ids)


def _unique_id(base: str, source_key: str) -> str:
    """``base``, or ``base-2``, ``base-3``...: never a bundled id, never another file's user profile."""
    import yaml

    user_dir = paths.user_profiles_dir()
    taken_by_other: set[str] = set()
    if user_dir.is_dir():
        for f in user_dir.glob("*.yaml"):
            try:
                data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                continue
            if not isinstance(data, dict):
                continue
            pid = str(data.get("id", f.stem))
            src = data.get("source") or {}
            key = src.get("local_file") or f"{src.get('repo')}@{src.get('recommended_quant')}"
            if key == source_key:
                return pid  # the same file again: keep its profile
            taken_by_other.add(pid)
    bundled = {p.stem for p in paths.bundled_profiles_dir().glob("*.yaml")}
    candidate, n = base, 1
    while candidate in taken_by_other or candidate in bundled or (user_dir / f"{candidate}.yaml").exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def profile_from_report(report: Any, *, repo: str | None = None, quant: str | None = None,
                        profile_id: str | None = None, prompt_format: str | None = None) -> Profile:
    """A new user profile for a GGUF of unknown origin, made from its own metadata, saved as YAML.

    Raises FormatUnknownError (with the choices) when the file has no template, its family is unknown and
    no ``prompt_format`` was chosen.
    """
    import yaml

    from desktop.engine import profiles

    base = profile_id or _slug(repo.split("/")[-1] if repo else (report.name or Path(report.path).stem))
    if quant and not profile_id:
        base = _slug(re.sub(re.escape(quant), "", base, flags=re.I)) or base
    local = None if repo else str(Path(report.path).absolute())
    pid = profile_id or _unique_id(base, local or f"{repo}@{quant}")
    out = paths.user_profiles_dir() / f"{pid}.yaml"
    if out.exists() and prompt_format is None:
        return profiles.load_profile_file(out)  # the same file again: its profile (and any user choice) stands
    fmt, fmt_source = format_for(report, prompt_format)
    native = int(report.context_length or 4096)
    nums = report.numbers
    arch: dict[str, Any] = {}
    if nums:
        arch = {"layers": nums["layers"], "embd": nums["embd"], "heads": nums["heads"], "kv_heads": nums["kv_heads"],
                "head_dim": nums["head_dim"], "vocab": int(report.vocab_size), "experts": nums["experts"],
                "experts_used": nums["experts_used"]}
    elif report.block_count:
        heads = int(report.head_count or 0)
        arch = {"layers": int(report.block_count), "embd": int(report.embedding_length or 0), "heads": heads,
                "kv_heads": int(report.head_count_kv or heads),
                "head_dim": int((report.embedding_length or 0) // heads) if heads else 0,
                "vocab": int(report.vocab_size), "experts": int(report.expert_count or 0),
                "experts_used": int(report.expert_used_count or 0)}
    eot = report.eot
    eot_note = (f"end of turn: {eot.id} {eot.text!r} ({'from its text, as llama.cpp finds it' if report.eot_source == 'text' else 'from the metadata'})"
                if eot is not None and report.eot_source else "end of turn: the EOS token")
    data: dict[str, Any] = {
        "id": pid,
        "name": report.name or pid,
        "description": f"Made from the metadata of {Path(report.path).name}" + (f" ({repo})" if repo else ""),
        "source": {"repo": repo, "quants": [quant] if quant else [], "recommended_quant": quant,
                   **({"local_file": local} if local else {})},
        "prompt": {"format": fmt, "stop_tokens": stop_tokens(report)},
        "context": {"native": native, "default": min(native, _default("context.default")), "max": native},
        "fixes": ["eot-128009"] if report.is_llama3_vocab else [],
        "notes": f"prompt format: {fmt_source}; {eot_note}.",
    }
    if arch:
        data["architecture"] = arch
    if getattr(report, "reasoning_format", ""):
        # a reasoning model (the Models page marks it): thinking needs room, and the format is on record
        data["reasoning"] = {"format": report.reasoning_format}
        data["sampling"] = {"max_tokens": profiles.REASONING_MAX_TOKENS}
        data["notes"] += f" Thinks before answering ({report.reasoning_format} format)."
    prof = profiles.profile_from_dict(data, f"<generated for {Path(report.path).name}>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return prof
