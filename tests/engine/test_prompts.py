"""Golden tests: every prompt format, byte for byte, as the model cards and HF templates give it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.engine.gguf import doctor as gguf_doctor
from desktop.engine.inference import prompts
from desktop.engine.errors import TemplateError
from tests.fixtures import tiny_gguf

CONVO = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "2+2?"},
]


def test_llama3_golden() -> None:
    assert prompts.render("llama3", CONVO) == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama3_matches_metas_own_jinja_template() -> None:
    ours = prompts.render("llama3", CONVO)
    theirs = prompts.render_jinja(tiny_gguf.LLAMA3_TEMPLATE, CONVO, bos_token="<|begin_of_text|>")
    assert ours == theirs


def test_llama31_golden_with_and_without_system() -> None:
    assert prompts.render("llama31", CONVO[1:2]) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert prompts.render("llama31", CONVO[:2]) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_mixtral_golden_merges_system_into_first_user_turn() -> None:
    assert prompts.render("mixtral", CONVO) == "<s>[INST] You are terse.\n\nHi! [/INST]Hello.</s>[INST] 2+2? [/INST]"
    assert prompts.render("mixtral", CONVO[1:2]) == "<s>[INST] Hi! [/INST]"


def test_mixtral_matches_mistrals_template_when_system_is_merged() -> None:
    merged = [{"role": "user", "content": "You are terse.\n\nHi!"}, *CONVO[2:]]
    assert prompts.render("mixtral", CONVO) == prompts.render_jinja(tiny_gguf.MISTRAL_TEMPLATE, merged,
                                                                   bos_token="<s>", eos_token="</s>")


def test_mixtral_rejects_non_alternating_turns() -> None:
    with pytest.raises(TemplateError):
        prompts.render("mixtral", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_upstage_golden() -> None:
    assert prompts.render("upstage", CONVO) == (
        "### System:\nYou are terse.\n\n### User:\nHi!\n\n### Assistant:\nHello.\n\n### User:\n2+2?\n\n### Assistant:\n"
    )
    # The card's own usage example: no system block.
    assert prompts.render("upstage", [{"role": "user", "content": "Thomas is healthy."}]) == (
        "### User:\nThomas is healthy.\n\n### Assistant:\n"
    )


def test_chatml_matches_the_demo_models_own_template(demo_model: Path) -> None:
    rep = gguf_doctor.inspect(demo_model)
    for convo in (CONVO, CONVO[1:2]):
        ours = prompts.render("chatml", convo,
                              system_prompt="You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        assert ours == prompts.render_jinja(rep.chat_template, convo)


@pytest.mark.parametrize("evil", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for m in messages %}{{ m.__class__.__base__ }}{% endfor %}",
    "{% set x = [] %}{% for i in range(100000) %}{% for j in range(100000) %}{{ 'xxxxxxxx' }}{% endfor %}{% endfor %}",
])
def test_hostile_templates_are_blocked(evil: str) -> None:
    with pytest.raises(TemplateError):
        prompts.render("gguf", CONVO, chat_template=evil)


def test_private_attributes_render_as_nothing() -> None:
    # The sandbox hides underscore attributes instead of raising: nothing of the context leaks.
    assert prompts.render("gguf", CONVO, chat_template="[{{ self._TemplateReference__context }}]") == "[]"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True)


@pytest.mark.parametrize("pid, fmt", [
    ("smaug-llama-3-70b-instruct", "llama3"),
    ("llama-3-8b-instruct-gradient-1048k", "llama3"),
    ("llama-3.1-nemotron-70b-instruct", "llama31"),
    ("smaug-mixtral-v0.1", "mixtral"),
    ("upstage-llama-65b-instruct", "upstage"),
])
def test_cli_prompt_prints_exactly_the_prompt(tmp_path: Path, pid: str, fmt: str) -> None:
    f = tmp_path / "m.json"
    f.write_text(json.dumps(CONVO))
    out = _cli("prompt", "--profile", pid, "--messages", str(f))
    assert out.returncode == 0, out.stderr
    assert out.stdout == prompts.render(fmt, CONVO)  # nothing appended, not even a newline
