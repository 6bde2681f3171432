"""Diversity of whole answers across samples: mode collapse is about texts, not tokens.

Over a set of texts (the seeds of one condition and conversation): distinct-n = unique word
n-grams / all word n-grams, pooled over the texts (lowercased, whitespace-split; n-grams never
span two texts); unique_fraction = distinct texts / texts; first_word_entropy_bits = entropy of
the first words' distribution across the texts (an empty text's first word is "").

Distinct-n falls with the amount of text: the more n-grams, the more of them repeat by chance.
Expectation-adjusted distinct-n (EAD, Liu et al. 2022, as used by Kirk et al. 2024) divides the
unique n-grams D of C n-grams by what C uniform draws from a vocabulary of V n-grams would give,
V * (1 - ((V - 1) / V) ** C): about 1 for text as varied as chance allows at its length, lower
for repetitive text, and no longer falling with length. V is passed in (the summary takes the
distinct n-grams of all the texts of a condition: the vocabulary it drew from). Pure Python.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

METRICS = ("distinct_1", "distinct_2", "unique_fraction", "first_word_entropy_bits", "ead_1", "ead_2")


def words(text: str) -> list[str]:
    return text.lower().split()


def ngrams(texts: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """Word n-grams of each text in turn (never spanning two texts)."""
    return [tuple(w[i:i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique word n-grams / all word n-grams over `texts`; None when there is no n-gram."""
    grams = ngrams(texts, n)
    return len(set(grams)) / len(grams) if grams else None


def expected_distinct(draws: int, vocabulary: int) -> float:
    """Expected distinct values among `draws` uniform draws from `vocabulary` values."""
    return vocabulary * -math.expm1(draws * math.log1p(-1.0 / vocabulary)) if vocabulary > 1 else min(draws, 1)


def expectation_adjusted_distinct(texts: Sequence[str], n: int, vocabulary: int) -> float | None:
    """EAD-n: unique n-grams / the unique n-grams expected of as many uniform draws from
    `vocabulary` n-grams; None when there is no n-gram."""
    grams = ngrams(texts, n)
    return len(set(grams)) / expected_distinct(len(grams), vocabulary) if grams else None


def vocabulary_sizes(texts: Sequence[str], orders: Sequence[int] = (1, 2)) -> dict[int, int]:
    """n -> distinct n-grams over all `texts` (the V of EAD-n)."""
    return {n: len(set(ngrams(texts, n))) for n in orders}


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


def diversity(texts: Sequence[str], vocabulary: dict[int, int] | None = None) -> Diversity:
    """The METRICS of a set of texts; EAD-n under `vocabulary` (n -> V; default: these texts')."""
    vocabulary = vocabulary or vocabulary_sizes(texts)
    return Diversity(len(texts), (distinct_n(texts, 1), distinct_n(texts, 2), unique_fraction(texts),
                                  first_word_entropy_bits(texts),
                                  expectation_adjusted_distinct(texts, 1, vocabulary[1]),
                                  expectation_adjusted_distinct(texts, 2, vocabulary[2])))
