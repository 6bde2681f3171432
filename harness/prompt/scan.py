"""The next of several literal strings in a text, left to right, in time linear in the text.

Marker texts come from templates and blocks tables; a template can make them hundreds of
kilobytes long, and generated text can hold them thousands of times. A regex alternation of them
compiles in time quadratic in their length, and searching each literal afresh at every step
rescans the text once per step. Here each literal's next occurrence is remembered and searched
again only once the walk has passed it: a whole walk reads the text once per literal.
"""

from __future__ import annotations

from collections.abc import Iterable

_UNKNOWN = -2  # not searched yet (-1: no occurrence left)


class Scanner:
    """Occurrences of `literals` in `text`, asked for at positions that only grow."""

    def __init__(self, text: str, literals: Iterable[str]):
        self.text = text
        self.literals = sorted({lit for lit in literals if lit}, key=len, reverse=True)  # longest first
        self._next = dict.fromkeys(self.literals, _UNKNOWN)
        self._pos = 0

    def find(self, pos: int) -> tuple[int, list[str]] | None:
        """(start, the literals occurring there, longest first) of the earliest occurrence at or
        after `pos`; None when none is left."""
        if pos < self._pos:  # a step back: forget what was found past it
            self._next = dict.fromkeys(self.literals, _UNKNOWN)
        self._pos = pos
        best, found = -1, []
        for lit in self.literals:
            at = self._next[lit]
            if at == -1:
                continue
            if at < pos:
                at = self._next[lit] = self.text.find(lit, pos)
                if at < 0:
                    continue
            if best < 0 or at < best:
                best, found = at, [lit]
            elif at == best:
                found.append(lit)
        return (best, found) if best >= 0 else None


def border_chain(pattern: str) -> list[int]:
    """KMP failure function: for each prefix length k, the longest proper border of pattern[:k]."""
    fail = [0] * (len(pattern) + 1)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = fail[k]
        if pattern[i] == pattern[k]:
            k += 1
        fail[i + 1] = k
    return fail


def suffix_prefixes(text: str, start: int, pattern: str, fail: list[int]) -> list[int]:
    """Lengths k (longest first) such that text ends with pattern[:k], looking only at
    text[start:] (KMP over that tail; `fail` from :func:`border_chain`)."""
    k = 0
    for i in range(start, len(text)):
        char = text[i]
        while k and (k == len(pattern) or char != pattern[k]):
            k = fail[k]
        if k < len(pattern) and char == pattern[k]:
            k += 1
    out = []
    while k:
        out.append(k)
        k = fail[k]
    return out
