"""What constant folding computes with: sets of possible constants, and the pure operations
(string methods, filters, arithmetic) it may apply to them, each bounded so that no folded value
grows past ``MAX_CHARS`` and no format string allocates past it.

A :class:`Values` is a set of possible constants (str, int, float, bool, None; lists as tuples)
of at most ``MAX_VALUES``; ``unknown`` says the expression may also be something folding cannot
see (data, a call it does not model), ``overflow`` that it was built from constants in too many
combinations to keep.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes

MAX_VALUES = 64
MAX_CHARS = 20_000
MAX_STEPS = 100_000
MAX_FOLDED_CHARS = 5_000_000
MAX_UNROLL = 256
MAX_CALL_DEPTH = 4
_WIDE = re.compile(r"\d{5,}|%[^a-zA-Z%]*\*")  # a width or precision past 9999, or taken from an argument


@dataclass(frozen=True)
class Values:
    known: frozenset[Any] = frozenset()
    unknown: bool = False
    overflow: bool = False

    def __or__(self, other: Values) -> Values:
        return capped(self.known | other.known, self.unknown or other.unknown, self.overflow or other.overflow)

    def strings(self) -> list[str]:
        return sorted(v for v in self.known if isinstance(v, str))


UNKNOWN = Values(unknown=True)
EMPTY_TEXT = Values(frozenset({""}))


def const(value: Any) -> Values:
    return Values(frozenset({value})) if fits(value) else UNKNOWN


def capped(known: Iterable[Any], unknown: bool, overflow: bool) -> Values:
    known = frozenset(known)
    if len(known) > MAX_VALUES:
        return Values(frozenset(), True, True)
    return Values(known, unknown, overflow)


def fits(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | float):
        return True
    if isinstance(value, int):
        return abs(value) < 1 << 64
    if isinstance(value, str):
        return len(value) <= MAX_CHARS
    if isinstance(value, tuple):
        return depth < 4 and len(value) <= MAX_UNROLL and all(fits(v, depth + 1) for v in value)
    return False


def jinja_str(value: Any) -> str:
    """What ``{{ value }}`` prints (a folded list is a tuple here, printed as Jinja prints a list)."""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def _plain_format(fmt: str) -> bool:
    """A ``str.format`` string with plain fields only (no ``{0.attr}``/``{0[key]}``, no huge widths)."""
    if _WIDE.search(fmt):
        return False
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
    except ValueError:
        return False
    return all(f == "" or f.isdigit() or f.isidentifier() for f in fields)


def _percent(fmt: Any, args: Any) -> str:
    if not isinstance(fmt, str) or _WIDE.search(fmt):
        raise ValueError("not folded")
    return fmt % (args if isinstance(args, tuple) else (args,))


def _format(fmt: Any, *args: Any, **kwargs: Any) -> str:
    if not isinstance(fmt, str) or not _plain_format(fmt):
        raise ValueError("not folded")
    longest = max((len(jinja_str(a)) for a in [*args, *kwargs.values()]), default=0)
    if fmt.count("{") * longest > MAX_CHARS:
        raise ValueError("too long")
    return fmt.format(*args, **kwargs)


def _replace(s: Any, old: Any, new: Any, count: Any = None) -> str:
    s, old, new = str(s), str(old), str(new)
    times = s.count(old) if old else len(s) + 1
    if len(s) + times * len(new) > MAX_CHARS:
        raise ValueError("too long")
    return s.replace(old, new, -1 if count is None else count)


def _sized(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A padding method (center, ljust, zfill...) refused past MAX_CHARS."""
    def call(s: Any, width: Any, *rest: Any) -> Any:
        if not isinstance(width, int) or width > MAX_CHARS:
            raise ValueError("too wide")
        return fn(s, width, *rest)
    return call


def _join(seq: Any, sep: Any = "") -> str:
    return str(sep).join(jinja_str(v) for v in seq)


STR_METHODS: dict[str, Callable[..., Any]] = {
    "format": _format, "join": lambda sep, seq: _join(seq, sep), "replace": _replace,
    "upper": str.upper, "lower": str.lower, "title": str.title, "capitalize": str.capitalize,
    "casefold": str.casefold, "swapcase": str.swapcase, "strip": str.strip, "lstrip": str.lstrip,
    "rstrip": str.rstrip, "removeprefix": str.removeprefix, "removesuffix": str.removesuffix,
    "split": lambda s, *a: tuple(s.split(*a)), "rsplit": lambda s, *a: tuple(s.rsplit(*a)),
    "center": _sized(str.center), "ljust": _sized(str.ljust), "rjust": _sized(str.rjust),
    "zfill": _sized(str.zfill),
}
FILTERS: dict[str, Callable[..., Any]] = {
    "join": lambda seq, sep="", attribute=None: _join(seq, sep) if attribute is None else refuse(),
    "replace": _replace,
    "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper(), "title": lambda s: str(s).title(),
    "capitalize": lambda s: str(s).capitalize(), "trim": lambda s, chars=None: str(s).strip(chars),
    "reverse": lambda v: v[::-1] if isinstance(v, str | tuple) else refuse(), "string": jinja_str,
    "first": lambda v: v[0], "last": lambda v: v[-1], "list": lambda v: tuple(v),
    "format": lambda fmt, *a: _percent(fmt, tuple(a)), "safe": lambda v: v, "default": lambda v, *a: v,
    "d": lambda v, *a: v, "length": len, "count": len, "int": lambda v, *a: int(v), "center": _sized(str.center),
}


def refuse() -> Any:
    raise ValueError("not folded")


def binop(op: type, left: Any, right: Any) -> Any:
    if op is nodes.Add:
        return left + right
    if op is nodes.Sub:
        return left - right
    if op is nodes.Mul:
        seq, times = (left, right) if isinstance(left, str | tuple) else (right, left)
        if isinstance(seq, str | tuple) and isinstance(times, int) and len(seq) * times > MAX_CHARS:
            raise ValueError("too long")
        return left * right
    if op is nodes.Mod:
        return _percent(left, right) if isinstance(left, str) else left % right
    if op is nodes.FloorDiv:
        return left // right
    if op is nodes.Div:
        return left / right
    raise ValueError("not folded")


BINOPS = (nodes.Add, nodes.Sub, nodes.Mul, nodes.Mod, nodes.FloorDiv, nodes.Div)
