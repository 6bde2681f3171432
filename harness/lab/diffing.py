"""Character- and token-level differences between two renderings of one conversation, in time
bounded by their length (a server's rendering may be megabytes)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Change:
    op: str  # "replace" | "delete" | "insert"
    a_start: int
    a_end: int
    b_start: int
    b_end: int
    a_text: str
    b_text: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


MAX_ITEMS = 2_000  # difflib is quadratic: it is never shown more items than this at once


def diff_sequences(a: Sequence[str], b: Sequence[str]) -> list[Change]:
    """Changes turning `a` into `b`; items are characters or token pieces. The common head and
    tail are cut first (linear); a middle too long for difflib is compared line by line, and
    a part still too long is one change: time stays bounded whatever the renderings."""
    return list(_diff(a, b, 0, 0, lines=isinstance(a, str) and isinstance(b, str)))


def _diff(a: Sequence[str], b: Sequence[str], at_a: int, at_b: int, *, lines: bool) -> Iterator[Change]:
    head = _common(a, b)
    tail = _common(a[head:][::-1], b[head:][::-1])
    mid_a, mid_b = a[head:len(a) - tail], b[head:len(b) - tail]
    at_a, at_b = at_a + head, at_b + head
    if not mid_a and not mid_b:
        return
    if len(mid_a) <= MAX_ITEMS and len(mid_b) <= MAX_ITEMS:
        matcher = difflib.SequenceMatcher(a=list(mid_a), b=list(mid_b), autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op != "equal":
                yield Change(op, at_a + i1, at_a + i2, at_b + j1, at_b + j2, "".join(mid_a[i1:i2]), "".join(mid_b[j1:j2]))
        return
    if lines:
        rows_a, rows_b = str(mid_a).splitlines(keepends=True), str(mid_b).splitlines(keepends=True)
        if len(rows_a) <= MAX_ITEMS and len(rows_b) <= MAX_ITEMS:
            starts_a, starts_b = _starts(rows_a), _starts(rows_b)
            for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=rows_a, b=rows_b, autojunk=False).get_opcodes():
                if op != "equal":
                    yield from _diff("".join(rows_a[i1:i2]), "".join(rows_b[j1:j2]), at_a + starts_a[i1],
                                     at_b + starts_b[j1], lines=False)
            return
    op = "replace" if mid_a and mid_b else ("delete" if mid_a else "insert")
    yield Change(op, at_a, at_a + len(mid_a), at_b, at_b + len(mid_b), "".join(mid_a), "".join(mid_b))


def _starts(rows: list[str]) -> list[int]:
    out = [0]
    for row in rows:
        out.append(out[-1] + len(row))
    return out


def _common(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the common prefix, by halving (slice comparisons run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def describe(changes: Sequence[Change], unit: str) -> list[str]:
    """One line per change: position, what went and what came (reprs show whitespace)."""
    lines = []
    for c in changes:
        where = f"{unit} {c.a_start}-{c.a_end} / {c.b_start}-{c.b_end}"
        lines.append(f"{c.op:8} {where}: {c.a_text!r} -> {c.b_text!r}")
    return lines
