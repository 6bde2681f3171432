"""Diversity of whole answers across samples: mode collapse is about texts, not tokens.

Over a set of texts (the seeds of one condition and conversation): distinct-n = unique word
n-grams / all word n-grams, pooled over the texts (lowercased, whitespace-split; n-grams never
span two texts); unique_fraction = distinct texts / texts; first_word_entropy_bits = entropy of
the first words' distribution across the texts (an empty text's first word is ""). Pure Python.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

METRICS = ("distinct_1", "distinct_2", "unique_fraction", "first_word_entropy_bits")


def words(text: str) -> list[str]:
    return text.lower().split()


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique word n-grams / all word n-grams over `texts`; None when there is no n-gram."""
    grams = [tuple(w[i:i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def unique_fraction(texts: Sequence[str]) -> float | None:
    return len(set(texts)) / len(texts) if texts else None


def first_word_entropy_bits(texts: Sequence[str]) -> float | None:
    """Shannon entropy (bits) of the first word across the texts."""
    if not texts:
        return None
    counts = Counter((w[0] if w else "") for w in map(words, texts))
    total = sum(counts.values())
    return max(0.0, -sum(c / total * math.log2(c / total) for c in counts.values()))


@dataclass(frozen=True)
class Diversity:
    """One set of texts' diversity, in METRICS order."""

    texts: int
    values: tuple[float | None, ...]


def diversity(texts: Sequence[str]) -> Diversity:
    return Diversity(len(texts), (distinct_n(texts, 1), distinct_n(texts, 2), unique_fraction(texts),
                                  first_word_entropy_bits(texts)))
