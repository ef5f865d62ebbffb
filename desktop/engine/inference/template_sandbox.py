"""Render an untrusted Jinja chat template (a GGUF's) inside budgets.

Jinja's ``ImmutableSandboxedEnvironment`` already blocks attribute access to Python internals, mutation
of lists and dicts, and ``range`` over 100,000 items. It does not bound *work*: ``{{ 9**9**9 }}`` or
``'x' * 10**9`` are one C-level operation each, nested loops run forever without printing a byte, and
``~`` doubles a string each turn. A GGUF is a download from anyone, so here:

- ``*``, ``**``, ``+`` and ``%`` are intercepted (``call_binop``) and refused *before* computing when the
  result would be an integer over ``MAX_INT_BITS`` or a string/list over ``MAX_ITEMS``; ``~`` goes through
  the same check (a code generator that routes concatenation to the environment);
- string/list methods and filters are refused when an integer argument (a width, a count) exceeds
  ``MAX_ITEMS`` or a format string asks for a width that large, and every call's and filter's result is
  checked against ``MAX_ITEMS``;
- the output is capped at ``MAX_OUTPUT`` characters;
- a trace function on the rendering thread stops the render after ``TIME_BUDGET_S`` seconds or when the
  process grew by ``MEMORY_BUDGET`` bytes: a line event fires on every loop turn of the compiled template,
  so even an empty loop ends. (Stopping from a trace function is Python's own way to interrupt Python code;
  the interception above makes sure no single C-level step can run long.)

Every refusal is a :class:`~desktop.engine.errors.TemplateError`. Runs anywhere (the engine process in
practice); rendering happens on the calling thread.
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
from datetime import datetime
from functools import wraps
from typing import Any, Callable

from jinja2 import Environment
from jinja2 import TemplateError as JinjaTemplateError
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from desktop.engine.errors import TemplateError

MAX_OUTPUT = 4_000_000  # characters of prompt; a template that writes more is hostile or broken
MAX_ITEMS = 4_000_000  # the largest string, list or count any single step may produce or ask for
MAX_INT_BITS = 1 << 16  # ~19,700 decimal digits: more than any chat template needs
TIME_BUDGET_S = 2.0
MEMORY_BUDGET = 512 << 20  # bytes the process may grow by while rendering
_CHECK_EVERY = 512  # trace events between two clock/memory checks
_WIDE_FORMAT = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format string


# Filters whose arguments are sizes: ``'x'|center(10**9)`` would allocate before any result check.
_SIZED_FILTERS = frozenset(["center", "indent", "truncate", "wordwrap", "batch", "slice", "random", "urlize"])


# The engine process sets this to its Stop flag (host.py), so Stop also ends a render in progress.
stop_flag: threading.Event | None = None


class RenderStopped(TemplateError):
    """The user pressed Stop while the template was rendering (not the template's fault)."""


class _BudgetExceeded(BaseException):
    """Raised from the trace function; a BaseException so no ``except Exception`` on the way swallows it."""


def _size(value: Any) -> int:
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        return len(value)
    return 0


def _refuse(what: str) -> SecurityError:
    return SecurityError(f"{what} is over the template budget")


def _check_result(value: Any) -> Any:
    if _size(value) > MAX_ITEMS:
        raise _refuse(f"a value of {_size(value):,} items")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise _refuse("an integer")
    return value


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_ITEMS:
            raise _refuse(f"an argument of {a:.3g}" if abs(a) < 1e300 else "a huge argument")


def _check_format(fmt: Any) -> None:
    if isinstance(fmt, str) and _WIDE_FORMAT.search(fmt):
        raise _refuse("a format width")


def _int_bits(v: Any) -> int:
    return abs(v).bit_length() if isinstance(v, int) and not isinstance(v, bool) else 0


class _BudgetCodeGenerator(CodeGenerator):
    """Jinja's code generator, except that ``a ~ b`` calls ``environment.concat_checked``: concatenation is
    not an interceptable binary operator, and doubling a string with ``~`` in a loop is the cheapest way to
    exhaust memory."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the work and size budgets described in the module docstring."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset(["*", "**", "+", "%", "//"])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters["tojson"] = _tojson
        self.filters = {name: self._checked(name, f) for name, f in self.filters.items()}

    @staticmethod
    def _checked(name: str, f: Callable[..., Any]) -> Callable[..., Any]:
        sized = name in _SIZED_FILTERS

        @wraps(f)  # keeps Jinja's pass_context/pass_environment markers
        def filt(*args: Any, **kwargs: Any) -> Any:
            plain = [a for a in args if not isinstance(a, (Context, EvalContext, Environment))]
            if sized:  # the arguments after the value are widths, lengths and counts
                _check_args(tuple(plain[1:]), kwargs)
            elif name == "format" and plain:
                _check_format(plain[0])
            return _check_result(f(*args, **kwargs))

        return filt

    def concat_checked(self, parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        if sum(len(t) for t in texts) > MAX_ITEMS:
            raise _refuse("a concatenated string")
        return "".join(texts)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and _int_bits(left) > 1 and isinstance(right, int) and right > 0:
            if right * _int_bits(left) > MAX_INT_BITS:
                raise _refuse("a power")
        elif op == "*":
            if _int_bits(left) + _int_bits(right) > MAX_INT_BITS:
                raise _refuse("a product")
            for seq, n in ((left, right), (right, left)):
                if _size(seq) and isinstance(n, int) and _size(seq) * max(n, 0) > MAX_ITEMS:
                    raise _refuse("a repeated string or list")
        elif op == "+":
            if _size(left) + _size(right) > MAX_ITEMS:
                raise _refuse("a concatenation")
        elif op == "%" and isinstance(left, str):
            _check_format(left)
        return _check_result(super().call_binop(context, op, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's form
        if isinstance(getattr(__obj, "__self__", None), (str, bytes, list, tuple)):
            _check_args(args, kwargs)  # ljust/center/zfill/expandtabs/...: an int argument is a size
        if getattr(__obj, "__name__", "") in ("format", "format_map"):
            _check_format(getattr(getattr(__obj, "__wrapped__", None), "__self__", None))
        return _check_result(super().call(__context, __obj, *args, **kwargs))


def _rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - no memory figure: the time budget still applies
        return 0


class _Budget:
    """The trace function: checks the clock and the process size every ``_CHECK_EVERY`` events."""

    def __init__(self, seconds: float, memory: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.memory = memory
        self.base = _rss()
        self.n = 0
        self.why = ""

    def check(self) -> None:
        if stop_flag is not None and stop_flag.is_set():
            self.why = "stopped"
            raise _BudgetExceeded
        if time.monotonic() > self.deadline:
            self.why = f"took longer than {self.seconds:g} s"
            raise _BudgetExceeded
        if self.base and _rss() - self.base > self.memory:
            self.why = f"used more than {self.memory >> 20} MiB of memory"
            raise _BudgetExceeded

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        self.n += 1
        if self.n % _CHECK_EVERY == 0:
            self.check()
        return self.trace


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    """``tojson`` as Hugging Face renders chat templates: plain JSON text. Jinja's own returns HTML-escaped Markup,
    and ``'text' + markup`` then escapes the text too (gpt-oss's tool results came out as ``&lt;|end|&gt;``)."""
    if indent is not None:
        _check_args((indent,), {})
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent,
                      separators=tuple(separators) if separators else None, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


def _strftime_now(fmt: str) -> str:
    _check_format(fmt)
    return datetime.now().strftime(str(fmt))


def render_chat_template(template: str, *, time_budget_s: float = TIME_BUDGET_S, memory_budget: int = MEMORY_BUDGET,
                         **context: Any) -> str:
    """Render ``template`` with ``context`` (messages, bos_token, …) inside the budgets, or raise TemplateError."""
    env = BudgetedSandbox(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    budget = _Budget(time_budget_s, memory_budget)
    previous = sys.gettrace()
    sys.settrace(budget.trace)
    try:
        tmpl = env.from_string(template)
        chunks: list[str] = []
        size = 0
        for piece in tmpl.generate(**context):
            size += len(piece)
            if size > MAX_OUTPUT:
                raise TemplateError("the chat template produced an unreasonably large prompt; it is not used")
            chunks.append(piece)
        return "".join(chunks)
    except _BudgetExceeded:
        if budget.why == "stopped":
            raise RenderStopped("Stop was pressed while the chat template was rendering") from None
        raise TemplateError(f"the model's chat template {budget.why} and was stopped; it is not used") from None
    except TemplateError:
        raise
    except SecurityError as exc:
        raise TemplateError(f"the model's chat template tried an unsafe operation and was blocked ({exc})") from exc
    except MemoryError as exc:
        raise TemplateError("the model's chat template ran out of memory and was stopped; it is not used") from exc
    except (JinjaTemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError,
            RecursionError, OverflowError, ZeroDivisionError) as exc:
        raise TemplateError(f"the model's chat template failed to render: {exc}") from exc
    finally:
        sys.settrace(previous)

__all__ = ["BudgetedSandbox", "RenderStopped", "render_chat_template", "stop_flag", "MAX_OUTPUT", "MAX_ITEMS", "TIME_BUDGET_S"]
