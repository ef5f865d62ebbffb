"""Hand-written prompt formats for the common model families beyond Llama 3 / ChatML.

Each function renders exactly what the family's own published chat template renders (golden tests in
tests/engine/test_formats.py compare byte for byte with the real templates in tests/fixtures/chat_templates/).
They are used when a GGUF carries no chat template of its own (the format is then detected from the
architecture, see ``gguf.arch``) or when a profile names the format. Quirks are the templates' own:
Gemma has no system role (the system text opens the first user turn), Mistral v3 puts the system text
into the LAST user turn, Llama 2 wraps it in ``<<SYS>>``. Plain Python; runs wherever ``prompts`` does (the engine
process in practice, the caller's process for the tool loop).
"""
from __future__ import annotations

from desktop.engine.errors import TemplateError

Msgs = list[dict[str, str]]


def _split_system(msgs: Msgs) -> tuple[str | None, Msgs]:
    if msgs and msgs[0]["role"] == "system":
        return msgs[0]["content"], msgs[1:]
    return None, msgs


def _alternate(msgs: Msgs, family: str) -> None:
    """The families below refuse anything but user/assistant turns, starting with user (as their templates do)."""
    for i, m in enumerate(msgs):
        if m["role"] == "system":
            raise TemplateError(f"the {family} format allows a system message only at the start")
        if (m["role"] == "user") != (i % 2 == 0):
            raise TemplateError(f"the {family} format needs user and assistant turns to alternate, starting with user")


def gemma(msgs: Msgs, gen: bool) -> str:
    # Gemma 2/3: no system role; the system text and a blank line open the first user turn. Contents are trimmed.
    system, rest = _split_system(msgs)
    _alternate(rest, "Gemma")
    out = ["<bos>"]
    for i, m in enumerate(rest):
        role = "model" if m["role"] == "assistant" else "user"
        prefix = system + "\n\n" if i == 0 and system is not None else ""
        out.append(f"<start_of_turn>{role}\n{prefix}{m['content'].strip()}<end_of_turn>\n")
    if gen:
        out.append("<start_of_turn>model\n")
    return "".join(out)


def _mistral(msgs: Msgs, *, space: bool, family: str) -> str:
    # v3 (Mistral 7B v0.3, Large 2407) and v3-tekken (Nemo): the system text goes into the LAST user turn,
    # and is dropped when the conversation ends with an assistant turn, exactly as the templates do.
    system, rest = _split_system(msgs)
    _alternate(rest, family)
    inst = "[INST] " if space else "[INST]"
    out = ["<s>"]
    for i, m in enumerate(rest):
        if m["role"] == "user":
            sys_part = system + "\n\n" if system is not None and i == len(rest) - 1 else ""
            out.append(f"{inst}{sys_part}{m['content']}[/INST]")
        elif space:
            out.append(f" {m['content'].strip()}</s>")
        else:
            out.append(f"{m['content']}</s>")
    return "".join(out)


def mistral_v3(msgs: Msgs, gen: bool) -> str:
    return _mistral(msgs, space=True, family="Mistral v3")


def mistral_tekken(msgs: Msgs, gen: bool) -> str:
    return _mistral(msgs, space=False, family="Mistral v3-tekken")


def mistral_v7(msgs: Msgs, gen: bool) -> str:
    # v7-tekken (Mistral Small 3.x): a real system role in [SYSTEM_PROMPT]. The published template writes a
    # dated default system prompt of its own when there is none; a profile's system_prompt takes that place.
    system, rest = _split_system(msgs)
    _alternate(rest, "Mistral v7")
    out = ["<s>"]
    if system is not None:
        out.append(f"[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT]")
    for m in rest:
        out.append(f"[INST]{m['content']}[/INST]" if m["role"] == "user" else f"{m['content']}</s>")
    return "".join(out)


def phi3(msgs: Msgs, gen: bool) -> str:
    # Phi-3 / 3.5 mini: every turn on its own line; Phi-3.5 skips an empty system message (so do we).
    out = []
    for m in msgs:
        if m["role"] == "system" and not m["content"]:
            continue
        out.append(f"<|{m['role']}|>\n{m['content']}<|end|>\n")
    out.append("<|assistant|>\n" if gen else "<|endoftext|>")
    return "".join(out)


def phi4mini(msgs: Msgs, gen: bool) -> str:
    # Phi-4-mini: the same tokens as Phi-3 without the newlines; only the first message can be the system one.
    out = []
    system, _ = _split_system(msgs)
    if system is not None:
        out.append(f"<|system|>{system}<|end|>")
    for m in msgs:
        if m["role"] != "system":
            out.append(f"<|{m['role']}|>{m['content']}<|end|>")
    out.append("<|assistant|>" if gen else "<|endoftext|>")
    return "".join(out)


def llama2(msgs: Msgs, gen: bool) -> str:
    # Llama 2 chat: <<SYS>> inside the first [INST]; each exchange opens with BOS; contents stripped.
    system, rest = _split_system(msgs)
    _alternate(rest, "Llama 2")
    out = []
    for i, m in enumerate(rest):
        content = m["content"]
        if i == 0 and system is not None:  # the template tests `system_message != false`: "" still counts
            content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
        if m["role"] == "user":
            out.append(f"<s>[INST] {content.strip()} [/INST]")
        else:
            out.append(f" {content.strip()} </s>")
    return "".join(out)


DEEPSEEK_BOS = "<｜begin▁of▁sentence｜>"
DEEPSEEK_EOS = "<｜end▁of▁sentence｜>"


def deepseek2(msgs: Msgs, gen: bool) -> str:
    out = [DEEPSEEK_BOS]
    for m in msgs:
        if m["role"] == "user":
            out.append(f"User: {m['content']}\n\n")
        elif m["role"] == "assistant":
            out.append(f"Assistant: {m['content']}{DEEPSEEK_EOS}")
        else:
            out.append(f"{m['content']}\n\n")
    if gen:
        out.append("Assistant:")
    return "".join(out)


def _deepseek3(msgs: Msgs, gen: bool, think: bool) -> str:
    # V3 / R1: every system text first (joined by a blank line), then <｜User｜>/<｜Assistant｜> turns; an
    # earlier answer's reasoning (up to </think>) is not sent back. R1 opens the answer with "<think>\n".
    systems = [m["content"] for m in msgs if m["role"] == "system"]
    out = [DEEPSEEK_BOS, "\n\n".join(systems)]
    for m in msgs:
        if m["role"] == "user":
            out.append(f"<｜User｜>{m['content']}")
        elif m["role"] == "assistant":
            out.append(f"<｜Assistant｜>{m['content'].split('</think>')[-1]}{DEEPSEEK_EOS}")
    if gen:
        out.append("<｜Assistant｜><think>\n" if think else "<｜Assistant｜>")
    return "".join(out)


def deepseek3(msgs: Msgs, gen: bool) -> str:
    return _deepseek3(msgs, gen, think=False)


def deepseek_r1(msgs: Msgs, gen: bool) -> str:
    return _deepseek3(msgs, gen, think=True)


def command_r(msgs: Msgs, gen: bool) -> str:
    system, rest = _split_system(msgs)
    _alternate(rest, "Command R")
    out = ["<BOS_TOKEN>"]
    if system is not None:
        out.append(f"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{system}<|END_OF_TURN_TOKEN|>")
    for m in rest:
        tok = "<|USER_TOKEN|>" if m["role"] == "user" else "<|CHATBOT_TOKEN|>"
        out.append(f"<|START_OF_TURN_TOKEN|>{tok}{m['content'].strip()}<|END_OF_TURN_TOKEN|>")
    if gen:
        out.append("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>")
    return "".join(out)


#: name -> (renderer, the BOS text it writes itself, stop strings)
FAMILY_FORMATS = {
    "gemma": (gemma, "<bos>", ("<end_of_turn>", "<start_of_turn>", "<eos>")),
    "mistral_v3": (mistral_v3, "<s>", ("</s>", "[INST]")),
    "mistral_tekken": (mistral_tekken, "<s>", ("</s>", "[INST]")),
    "mistral_v7": (mistral_v7, "<s>", ("</s>", "[INST]")),
    "phi3": (phi3, "", ("<|end|>", "<|endoftext|>", "<|user|>")),
    "phi4mini": (phi4mini, "", ("<|end|>", "<|endoftext|>", "<|user|>")),
    "llama2": (llama2, "<s>", ("</s>", "[INST]")),
    "deepseek2": (deepseek2, DEEPSEEK_BOS, (DEEPSEEK_EOS,)),
    "deepseek3": (deepseek3, DEEPSEEK_BOS, (DEEPSEEK_EOS, "<｜User｜>")),
    "deepseek_r1": (deepseek_r1, DEEPSEEK_BOS, (DEEPSEEK_EOS, "<｜User｜>")),
    "command_r": (command_r, "<BOS_TOKEN>", ("<|END_OF_TURN_TOKEN|>",)),
}
