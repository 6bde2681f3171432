"""Candidates of a message laid out whole: side by side in columns when the terminal is wide
enough for each to get ``MIN_COLUMN`` characters, else stacked. Each has a header with its
number, seed, stop reason, length and mean entropy; its text is drawn with its blanks visible
(harness.repl.whitespace). Pure layout: lines of (style, text) fragments.
"""

from __future__ import annotations

from itertools import zip_longest

from harness.chat.events import CandidateRow
from harness.repl.whitespace import MARK, marked

Line = list[tuple[str, str]]
MIN_COLUMN = 30
GAP = " │ "


def header(row: CandidateRow, of: int) -> str:
    return " · ".join(header_parts(row, of))


def header_lines(row: CandidateRow, of: int, width: int) -> list[Line]:
    """The header in lines of at most `width` characters, broken between its parts."""
    lines: list[str] = []
    for part in header_parts(row, of):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return [piece for line in lines for piece in _wrap([("bold", line)], width)]


def header_parts(row: CandidateRow, of: int) -> list[str]:
    parts = [f"[{row.number}/{of}]{' chosen' if row.chosen else ''}"]
    if row.seed is not None:
        parts.append(f"seed {row.seed}")
    if row.stop_reason:
        parts.append(f"{row.stop_reason}, {row.tokens} tok")
    if row.mean_entropy_bits is not None:
        parts.append(f"H̄ {row.mean_entropy_bits:.2f} bits")
    return parts


def body(row: CandidateRow, style: str) -> list[Line]:
    """The candidate's text (blanks visible) and what it holds besides, as lines."""
    lines: list[Line] = [[]]
    for fragment_style, text in marked(row.text, style) if row.text else [(MARK, "(no text)")]:
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append([])
            if part:
                lines[-1].append((fragment_style, part))
    lines += [[(MARK, "+ "), ("", extra)] for extra in row.extras]
    return lines


def _wrap(line: Line, width: int) -> list[Line]:
    """`line` cut into pieces of at most `width` characters, between words where it can be."""
    chars = [(style, c) for style, text in line for c in text]
    out: list[Line] = []
    while len(chars) > width:
        cut = next((i for i in range(width, width // 2, -1) if chars[i - 1][1] == " "), width)
        out.append(_merge(chars[:cut]))
        chars = chars[cut:]
    out.append(_merge(chars))
    return out


def _merge(chars: list[tuple[str, str]]) -> Line:
    line: Line = []
    for style, c in chars:
        if line and line[-1][0] == style:
            line[-1] = (style, line[-1][1] + c)
        else:
            line.append((style, c))
    return line


def fits_columns(count: int, width: int) -> bool:
    return count >= 2 and count * MIN_COLUMN + (count - 1) * len(GAP) <= width


def layout(rows: tuple[CandidateRow, ...], of: int, width: int, style: str) -> list[Line]:
    """The candidates as lines: columns when `width` holds them, else one after another."""
    if fits_columns(len(rows), width):
        return _columns(rows, of, width, style)
    out: list[Line] = []
    for row in rows:
        out += header_lines(row, of, width)
        out += [piece for line in body(row, style) for piece in _wrap(line, width)]
        out.append([])
    return out


def _columns(rows: tuple[CandidateRow, ...], of: int, width: int, style: str) -> list[Line]:
    column = (width - (len(rows) - 1) * len(GAP)) // len(rows)
    blocks = []
    for row in rows:
        lines = [*header_lines(row, of, column), [(MARK, "─" * column)]]
        for line in body(row, style):
            lines += _wrap(line, column)
        blocks.append(lines)
    out: list[Line] = []
    for cells in zip_longest(*blocks, fillvalue=[]):
        line: Line = []
        for i, cell in enumerate(cells):
            if i:
                line.append((MARK, GAP))
            used = sum(len(t) for _, t in cell)
            line += [*cell, ("", " " * (column - used))] if i < len(cells) - 1 else list(cell)
        out.append(line)
    return out
