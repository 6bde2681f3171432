"""Character- and token-level differences between two renderings of one conversation."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
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


def diff_sequences(a: Sequence[str], b: Sequence[str]) -> list[Change]:
    """Changes turning `a` into `b`; items are characters or token pieces."""
    matcher = difflib.SequenceMatcher(a=list(a), b=list(b), autojunk=False)
    return [Change(op, i1, i2, j1, j2, "".join(a[i1:i2]), "".join(b[j1:j2]))
            for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


def describe(changes: Sequence[Change], unit: str) -> list[str]:
    """One line per change: position, what went and what came (reprs show whitespace)."""
    lines = []
    for c in changes:
        where = f"{unit} {c.a_start}-{c.a_end} / {c.b_start}-{c.b_end}"
        lines.append(f"{c.op:8} {where}: {c.a_text!r} -> {c.b_text!r}")
    return lines
