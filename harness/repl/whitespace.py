"""Whitespace you can see: text drawn so that its leading and trailing blanks and its newlines
show, as fragments (style, text) for prompt_toolkit.

A blank at an edge (the start or end of the text, the end of a line) is drawn as ``·`` (a tab
``→``), a newline as ``↵`` before the line break; blanks between words stay blanks. The marks are
dim, so they read as marks, not as text.
"""

from __future__ import annotations

import re

MARK = "ansibrightblack"
SPACE, TAB, NEWLINE = "·", "→", "↵"
_EDGE = re.compile(r"^[ \t]+|[ \t]+(?=\n)|[ \t]+$")


def _blanks(text: str) -> str:
    return text.replace(" ", SPACE).replace("\t", TAB)


def marked(text: str, style: str = "", *, leading: bool = True, trailing: bool = True,
           breaks: bool = True) -> list[tuple[str, str]]:
    """`text` as fragments with its edge blanks and newlines marked. `leading` / `trailing`:
    whether the start / end of `text` is an edge (a piece in the middle of a longer text is not);
    `breaks`: a newline also breaks the line (False: one line, for lists)."""
    out: list[tuple[str, str]] = []
    pos = 0
    for match in _EDGE.finditer(text):
        start, end = match.span()
        line_end = end < len(text) and text[end] == "\n"
        if not (line_end or (start == 0 and leading) or (end == len(text) and trailing)):
            continue
        _plain(out, text[pos:start], style, breaks)
        out.append((MARK, _blanks(text[start:end])))
        pos = end
    _plain(out, text[pos:], style, breaks)
    return [f for f in out if f[1]]


def _plain(out: list[tuple[str, str]], text: str, style: str, breaks: bool) -> None:
    """Text whose only marks are its newlines."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i:
            out.append((MARK, NEWLINE))
            if breaks:
                out.append((style, "\n"))
        out.append((style, line))


def one_line(text: str, room: int) -> str:
    """`text` on one line of at most `room` characters, edges and newlines marked (for lists)."""
    flat = "".join(t for _, t in marked(text, breaks=False))
    return flat if len(flat) <= room else flat[: room - 1] + "…"
