"""The rules for text that comes from outside harness (files, templates, servers, models).

- To a terminal, control characters are *shown*, never sent: ESC, CSI, OSC, BEL, backspace and
  the C1 controls (``\\x9b`` is a CSI on many terminals) become visible stand-ins, so a
  template, a server or a token cannot move the cursor, retitle the window or fake a line.
  Exact bytes stay exact where they are the contract (a pipe, a file, ``--json``): callers
  apply :func:`visible` only when writing to a terminal or a one-line message.
- A lone UTF-16 surrogate (``"\\ud800"``, valid in JSON and YAML escapes, not in UTF-8) is
  refused where text enters: :func:`check_text` raises the caller's error class naming where.

    terminal.py   the one way harness writes to a terminal (the output rule)
    inputs.py     the one way harness opens a file it is handed, and parses JSON from outside
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# C0 controls but tab and newline, DEL, and the C1 range.
# (lone surrogates too: they cannot even be encoded for the terminal)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROLS_AND_NEWLINES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMES = {"\x1b": "␛", "\x07": "␇", "\x08": "␈", "\x7f": "␡", "\r": "␍", "\n": "␤", "\t": "␉",
          "\x00": "␀"}
_SURROGATE = re.compile("[\ud800-\udfff]")


def _show(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMES:
        return _NAMES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible(text: str) -> str:
    """`text` safe for a terminal: controls shown (``␛``, ``\\x9b``...); tabs and newlines kept."""
    return _CONTROLS.sub(_show, text)


def visible_line(text: str) -> str:
    """`text` as one safe terminal line: newlines shown too (a message cannot fake a second line)."""
    return _CONTROLS_AND_NEWLINES.sub(_show, text)


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def check_text(value: Any, *, error: type[Exception], where: str | None, what: str,
               depth: int = 0) -> None:
    """Raise `error` if `value` (a string, or lists and mappings of them) holds a lone surrogate
    or nests deeper than 100 levels."""
    if depth > 100:
        raise error(f"{what} is nested more than 100 levels deep", where=where,
                    hint="flatten it")  # type: ignore[call-arg]
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        if found:
            raise error(f"{what} holds a lone surrogate (\\u{ord(found.group()):04x}), which is not text",
                        where=where, hint="remove it or write the character it stands for")  # type: ignore[call-arg]
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(key, error=error, where=where, what=what, depth=depth + 1)
            check_text(item, error=error, where=where, what=what, depth=depth + 1)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for item in value:
            check_text(item, error=error, where=where, what=what, depth=depth + 1)


def finite(value: Any) -> Any:
    """`value` with NaN and infinities (which JSON has not) as None, through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
