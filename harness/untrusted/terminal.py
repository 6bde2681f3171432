"""The one way harness writes to a terminal: every line on stdout or stderr passes :func:`write`.

Text on its way out is shown, not obeyed (:func:`harness.untrusted.visible`): a template name, an
experiment label, a server's error or a file name cannot retitle the window, clear the screen or
write the clipboard. Three shapes:

- human text (tables, listings, summaries, progress): controls shown, tabs and newlines kept;
- one-line messages (``harness: error: ...``, notices): newlines shown too, so a message cannot
  fake a second line;
- output whose bytes are the contract (a rendered prompt, streamed tokens) with ``exact``: the
  bytes unchanged on a pipe or a file, shown on a terminal. JSON (:func:`write_json`) escapes
  what a terminal would obey and stays the same JSON value.

``tests/test_output_rule.py`` fails on a ``print`` or a ``sys.stdout``/``sys.stderr`` anywhere
else in the package (the REPL draws through prompt_toolkit in ``harness/repl/display.py``, which
applies the same rule).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

from harness.untrusted import finite, visible, visible_line

# what json.dumps(ensure_ascii=False) leaves raw and a terminal may obey: DEL, the C1 range
# (0x9b is a CSI), and the Unicode line separators
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")


def write(text: str = "", *, stream: TextIO | None = None, end: str = "\n", one_line: bool = False,
          exact: bool = False, redraw: bool = False, flush: bool = False) -> None:
    """Write `text` (stdout unless `stream`): controls shown; `one_line` shows newlines too;
    `exact` keeps the bytes when `stream` is not a terminal; `redraw` returns to the start of
    the line first (a status line drawn over itself)."""
    out = stream if stream is not None else sys.stdout
    if exact and not is_terminal(out):
        shown = text
    else:
        shown = visible_line(text) if one_line else visible(text)
    out.write(("\r" if redraw else "") + shown + end)
    if flush or exact or redraw:
        out.flush()


def message(text: str, *, stream: TextIO | None = None) -> None:
    """``harness: TEXT`` as one line on stderr (errors, warnings, notices)."""
    write(f"harness: {text}", stream=stream if stream is not None else sys.stderr, one_line=True)


def write_json(value: Any, *, indent: int | None = None, stream: TextIO | None = None) -> None:
    """`value` as one JSON document and a newline. Non-finite numbers become ``null`` (JSON has no
    NaN or Infinity); DEL, C1 controls and U+2028/9 are written as ``\\u`` escapes."""
    try:
        text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    except ValueError:
        text = json.dumps(finite(value), ensure_ascii=False, indent=indent, allow_nan=False)
    text = _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    (stream if stream is not None else sys.stdout).write(text + "\n")


def is_terminal(stream: TextIO | None = None) -> bool:
    out = stream if stream is not None else sys.stdout
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


def stdout() -> TextIO:
    """The stream `write` writes to by default (for code that hands a stream on, like a progress line)."""
    return sys.stdout


def stderr() -> TextIO:
    return sys.stderr
