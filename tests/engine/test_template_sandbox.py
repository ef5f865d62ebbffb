"""Hostile GGUF chat templates are refused with a TemplateError within a few seconds; honest ones render as
plain Jinja renders them."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from desktop.engine.errors import TemplateError
from desktop.engine.inference import prompts, template_sandbox
from desktop.engine.inference.template_sandbox import render_chat_template
from tests.fixtures import tiny_gguf

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Bye?"}]

HOSTILE = {
    "huge power": "{{ 99999999**99999999 }}",
    "tower of powers": "{{ 10**1000**1000 }}",  # Jinja reads it as (10**1000)**1000
    "huge range": "{% for i in range(10**9) %}x{% endfor %}",
    "silent nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "macro recursion loop": "{% macro f(n) %}{% for i in range(1000) %}{{ f(n) if n else '' }}{% endfor %}"
                            "{% endmacro %}{{ f(1) }}",
    "string times huge": "{{ 'x' * 10**9 }}",
    "list times huge": "{{ ([1] * 100000) * 100000 }}",
    "doubling with ~": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                       "{% endfor %}{{ ns.s|length }}",
    "doubling with +": "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
                       "{% endfor %}{{ ns.s|length }}",
    "wide filter": "{{ 'x'|center(1000000000) }}",
    "wide method": "{{ 'x'.ljust(1000000000) }}",
    "wide % format": "{{ '%999999999d' % 1 }}",
    "wide str.format": "{{ '{:>999999999}'.format(1) }}",
    "endless output": "{% for i in range(100000) %}{% for j in range(100000) %}yyyyyyyyyy{% endfor %}{% endfor %}",
    "python internals": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "mutation": "{% set l = [] %}{{ l.append(1) }}",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_templates_are_refused_quickly(name: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(TemplateError, match="chat template"):
        render_chat_template(HOSTILE[name], messages=MSGS, bos_token="<s>", eos_token="</s>",
                             add_generation_prompt=True)
    assert time.monotonic() - t0 < template_sandbox.TIME_BUDGET_S + 2.0


def test_the_time_budget_stops_python_level_work() -> None:
    before = sys.gettrace()
    t0 = time.monotonic()
    with pytest.raises(TemplateError, match=r"took longer than 0.3 s"):
        render_chat_template(HOSTILE["silent nested loops"], time_budget_s=0.3, messages=MSGS)
    assert time.monotonic() - t0 < 1.5
    assert sys.gettrace() is before  # the budget's trace function is gone again


@pytest.mark.parametrize("template", [tiny_gguf.LLAMA3_TEMPLATE, tiny_gguf.MISTRAL_TEMPLATE,
                                      tiny_gguf.UPSTAGE_TEMPLATE])
def test_honest_templates_render_exactly_as_plain_jinja(template: str) -> None:
    msgs = MSGS[1:] if template is tiny_gguf.MISTRAL_TEMPLATE else MSGS
    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template).render(
        messages=msgs, bos_token="<s>", eos_token="</s>", add_generation_prompt=True)
    assert prompts.render("gguf", msgs, chat_template=template, bos_token="<s>", eos_token="</s>") == plain
    assert plain


def test_templates_may_still_do_ordinary_arithmetic_and_strings() -> None:
    t = ("{{ 2**10 }} {{ 3 * 4 }} {{ 'ab' * 3 }} {{ [1, 2] + [3] }} {{ '%05d' % 42 }} {{ '{:>4}'.format(7) }} "
         "{{ 'x' ~ 'y' }} {{ messages|length }} {{ raise_exception is defined }}")
    assert render_chat_template(t, messages=MSGS) == "1024 12 ababab [1, 2, 3] 00042    7 xy 4 True"
    with pytest.raises(TemplateError, match="refused the conversation: no system role"):
        render_chat_template("{{ raise_exception('no system role') }}", messages=MSGS)


def _engine_processes(tag: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("DESKTOP_CHAT_TEST_TAG") == tag:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def test_compiling_a_template_folds_no_intercepted_constant() -> None:
    """Jinja folds constant expressions while compiling; the sandbox's intercepted operators must not be folded,
    or ``{{ 99999999**99999999 }}`` would run inside ``from_string`` before any budget applies."""
    code = ("import time\nfrom desktop.engine.inference.template_sandbox import BudgetedSandbox\n"
            f"for t in {list(HOSTILE.values())!r}:\n"
            "    t0 = time.monotonic()\n"
            "    BudgetedSandbox(trim_blocks=True, lstrip_blocks=True).from_string(t)\n"
            "    assert time.monotonic() - t0 < 2, t\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("template,refusal", [
    (HOSTILE["silent nested loops"], "error: the model's chat template took longer than"),
    # A constant power: llama-cpp-python's Llama() would compile it, unguarded, while loading the file.
    (HOSTILE["huge power"] + tiny_gguf.LLAMA3_TEMPLATE, "error: the model's chat template tried an unsafe operation"),
], ids=["silent nested loops", "constant power"])
def test_ask_with_a_gguf_whose_template_is_hostile_fails_fast_and_leaves_nothing_behind(
        tmp_path: Path, template: str, refusal: str) -> None:
    model = tiny_gguf.make_llama3(tmp_path / "hostile.gguf", chat_template=template)
    tag = uuid.uuid4().hex
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "desktop", "ask", "--model", str(model.path), "--ctx", "512", "hi"],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, DESKTOP_CHAT_TEST_TAG=tag))
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(refusal) and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert took < 30, took
    time.sleep(0.5)
    assert _engine_processes(tag) == []  # the engine process went with the CLI


def test_big_numbers_as_values_are_fine_only_big_sizes_are_refused() -> None:
    t = "{{ ts|string }} {{ (ts // 1000)|int }} {{ '%d'|format(ts) }} {{ [ts, 1]|max }}"
    assert render_chat_template(t, ts=1_700_000_000) == "1700000000 1700000 1700000000 1700000000"


def test_a_wide_format_filter_is_refused() -> None:
    with pytest.raises(TemplateError, match="format width"):
        render_chat_template("{{ '%999999999d'|format(1) }}")


def test_llama_cpp_python_never_compiles_the_files_template_at_load(tmp_path: Path) -> None:
    """Llama() would compile every tokenizer.chat_template* value, unguarded; the engine keeps them from it."""
    import llama_cpp

    from desktop.engine.inference.llama_backend import LlamaBackend
    from desktop.engine.inference.protocol import Load

    stock = llama_cpp._internals.LlamaModel.metadata
    model = tiny_gguf.make_llama3(tmp_path / "m.gguf", chat_template=tiny_gguf.LLAMA3_TEMPLATE)
    b = LlamaBackend()
    try:
        b.load(Load(id="l", model_path=str(model.path), n_ctx=256, n_threads=1))
        assert b.llm._chat_handlers == {}  # nothing compiled
        assert not any(k.startswith("tokenizer.chat_template") for k in b.llm.metadata)
        assert b._report is not None and b._report.chat_template == tiny_gguf.LLAMA3_TEMPLATE  # the app's own copy
    finally:
        b.close()
    assert llama_cpp._internals.LlamaModel.metadata is stock  # restored after the load
