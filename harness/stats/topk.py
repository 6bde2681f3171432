"""Statistics of a next-token distribution known only through its top-k probabilities.

A server hands back the k most likely tokens with their probabilities, not the logits, so the
full-vocabulary statistics of :mod:`harness.stats.entropy` cannot be computed. What is computed here,
and marked ``truncated`` with the missing ``tail_mass`` = 1 − Σ top-k:

- entropy (bits): the entropy of the top-k plus the tail taken as *one* outcome,
  −Σ pᵢ log2 pᵢ − t log2 t. Splitting the tail over several tokens only raises entropy, so this
  is a lower bound of the true entropy; it is exact when t = 0. (The true value is at most
  t · log2(V − k) higher for a vocabulary of V tokens.)
- varentropy (bits²): of the same lumped distribution.
- surprisal (bits): −log2 p(chosen), exact whenever the server reports the chosen token's
  probability (it always does for llama-server and OpenAI-compatible logprobs).
- eot_prob: the summed probability of the end-of-generation tokens *present in the top-k*, a
  lower bound (the true value is at most eot_prob + tail_mass).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from harness.stats.entropy import StepStats


def tail_mass(probs: Sequence[float]) -> float:
    """Probability outside the listed tokens, clamped at 0 (servers round)."""
    return max(0.0, 1.0 - math.fsum(probs))


def lumped_entropy_bits(probs: Sequence[float]) -> tuple[float, float]:
    """(entropy, varentropy) in bits of the top-k plus the tail as a single outcome."""
    masses = [p for p in probs if p > 0.0]
    tail = tail_mass(probs)
    if tail > 0.0:
        masses.append(tail)
    if not masses:
        return 0.0, 0.0
    total = math.fsum(masses)
    info = [-math.log2(p / total) for p in masses]
    mean = math.fsum(p / total * h for p, h in zip(masses, info, strict=True))
    var = math.fsum(p / total * (h - mean) ** 2 for p, h in zip(masses, info, strict=True))
    return max(mean, 0.0), var


def surprisal_bits_of(prob: float | None) -> float:
    """−log2 p; NaN when the probability is unknown, +inf when it is 0."""
    if prob is None:
        return math.nan
    return math.inf if prob <= 0.0 else -math.log2(prob)


def truncated_stats(top: Sequence[tuple[int, float]], chosen_prob: float | None,
                    eog_ids: Iterable[int]) -> StepStats:
    """StepStats from `top` = [(token id, probability)], most likely first (ids < 0 are tokens
    the server named only by text)."""
    probs = [p for _, p in top]
    entropy, varentropy = lumped_entropy_bits(probs)
    eog = set(eog_ids)
    eot = math.fsum(p for i, p in top if i in eog)
    return StepStats(entropy, surprisal_bits_of(chosen_prob), eot, tuple(i for i, _ in top),
                     tuple(probs), varentropy, truncated=True, tail_mass=tail_mass(probs))
