"""The sandboxed Jinja environment chat templates render in, as ``apply_chat_template`` sets it up.

An immutable sandbox with ``trim_blocks``/``lstrip_blocks``, loop controls, ``{% generation %}``
blocks rendered as their body, ``raise_exception``, ``strftime_now`` and a ``tojson`` that calls
``json.dumps`` with ``ensure_ascii=False`` like transformers. Each distinct source compiles once.
Beyond the sandbox a template is held to limits (output size, ``*``/``**`` results). This module
runs inside the render worker; everything else renders through :mod:`harness.prompt.templates`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from harness.errors import TemplateError

MAX_OUTPUT_CHARS = 8_000_000  # about two million tokens, past any context window
MAX_TOJSON_INDENT = 64
MAX_INT_BITS = 1 << 16  # an integer result of ``*`` or ``**``; Python prints 4,300 digits at most
_EXHAUST_HINT = "this template tries to exhaust memory or time; do not use it"


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` renders its body unchanged (transformers uses
    the block only to build an assistant-token mask)."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


class _RaisedByTemplate(Exception):
    """What ``raise_exception`` raises inside a render; carries the template's own message."""


class _ResourceLimit(Exception):
    """A render asked for more than a prompt can need (too long an output, too big a value)."""


def _raise_exception(message: str) -> None:
    raise _RaisedByTemplate(str(message))


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | str | None = None,
            separators: Any = None, sort_keys: bool = False) -> str:
    width = len(indent) if isinstance(indent, str) else indent
    if isinstance(width, int) and width > MAX_TOJSON_INDENT:
        raise _ResourceLimit(f"tojson indent {width} is over {MAX_TOJSON_INDENT}")
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _pinned_strftime_now(now: str) -> Any:
    """``strftime_now`` reading a fixed ISO date-time (a run's pinned date) instead of the clock."""
    try:
        when = datetime.fromisoformat(now)
    except ValueError:
        raise TemplateError(f"strftime_now is pinned to {now!r}, which is not an ISO date",
                            hint="e.g. 2026-12-01 or 2026-12-01T09:30") from None

    def strftime_now(fmt: str) -> str:
        return when.strftime(fmt)

    return strftime_now


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with ``*`` and ``**`` checked first, so ``'x' * 4000000000`` and
    ``9 ** 999999999`` fail at once instead of exhausting the render worker's memory or time."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Refuse at once: jinja2 returns an Undefined that prints as "" and fails only if used,
        which lets an escape attempt render silently; a template debugger should say so."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if operator == "**":
            bits = abs(left).bit_length() * right if abs(left) > 1 and right > 0 else 0
        else:
            bits = abs(left).bit_length() + abs(right).bit_length()
        if bits > MAX_INT_BITS:  # say so without printing the operands: they may be huge too
            raise _ResourceLimit(f"an integer {operator} with a result over {MAX_INT_BITS:,} bits")
        return
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                    and len(seq) * times > MAX_OUTPUT_CHARS:
                raise _ResourceLimit(f"repeating a {type(seq).__name__} of {len(seq):,} items "
                                     f"{times:,} times is over {MAX_OUTPUT_CHARS:,}")


@functools.lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    env = _BoundedSandbox(
        trim_blocks=True, lstrip_blocks=True,
        extensions=[_GenerationBlock, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def syntax_tree(source: str) -> jinja2.nodes.Template:
    """`source` parsed as a render parses it, for lint's static pass (jinja2's errors propagate)."""
    return _environment().parse(source)


def known_filters_and_tests() -> tuple[frozenset[str], frozenset[str]]:
    """The filters and tests a template may use here (Jinja's and the ones transformers adds)."""
    env = _environment()
    return frozenset(env.filters), frozenset(env.tests)


@functools.lru_cache(maxsize=64)
def _compile(source: str, name: str) -> jinja2.Template:
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error: {exc.message}", where=f"{name}:{exc.lineno}",
                            hint="fix the template") from None
    except (SyntaxError, RecursionError) as exc:  # Python's compiler: 20 nested loops, 100 indents
        detail = exc.msg if isinstance(exc, SyntaxError) else exc  # its line is jinja2's code, not ours
        raise TemplateError(f"cannot compile the template: {type(exc).__name__}: {detail}", where=name,
                            hint="the template nests blocks or expressions too deeply") from None
    except Exception as exc:  # whatever else a stranger's source makes jinja2 raise (MemoryError...)
        raise TemplateError(f"cannot compile the template: {type(exc).__name__}: {exc}",
                            where=name) from None


def _template_line(exc: BaseException, name: str) -> str:
    """The template line a render error was raised from, read off the traceback."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{name}:{line}" if line else name


def render_sandboxed(source: str, name: str, messages: Sequence[Mapping[str, Any]], *,
                     add_generation_prompt: bool, variables: Mapping[str, Any] | None = None,
                     now: str | None = None) -> str:
    """Render in *this* process: the sandbox and the output cap, but no memory or time limit.
    The render worker calls this; everything else calls :func:`render_source`."""
    template = _compile(source, name)
    # transformers always passes tools and documents (None when not given); templates test them
    context: dict[str, Any] = {"bos_token": "", "eos_token": "", "tools": None, "documents": None}
    try:
        context.update(variables or {})
        context["messages"] = [dict(m) for m in messages]
        context["add_generation_prompt"] = add_generation_prompt
        pinned = now or context.get("strftime_now")  # a date string pins it (a profile's vars, --date)
        if isinstance(pinned, str | date):
            context["strftime_now"] = _pinned_strftime_now(str(pinned))
        return _bounded(template.generate(**context))
    except _RaisedByTemplate as exc:
        raise TemplateError(f"template refused the conversation: {exc}",
                            where=_template_line(exc, name)) from None
    except SecurityError as exc:
        raise TemplateError(f"unsafe template operation blocked by the sandbox: {exc}",
                            where=_template_line(exc, name),
                            hint="this template tries to reach Python internals; do not use it") from None
    except _ResourceLimit as exc:
        raise TemplateError(f"render stopped: {exc}", where=_template_line(exc, name),
                            hint=_EXHAUST_HINT) from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"render failed: {exc}", where=_template_line(exc, name),
                            hint="check the template against these messages") from None
    except MemoryError as exc:
        raise TemplateError("render ran out of memory", where=_template_line(exc, name),
                            hint=_EXHAUST_HINT) from None
    except Exception as exc:  # TypeError, RecursionError, OverflowError...: the stranger's code
        raise TemplateError(f"render failed: {type(exc).__name__}: {exc}",
                            where=_template_line(exc, name)) from None


def _bounded(chunks: Iterator[str]) -> str:
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise _ResourceLimit(f"output is over {MAX_OUTPUT_CHARS:,} characters")
        parts.append(chunk)
    return "".join(parts)
