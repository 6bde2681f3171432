"""Statistics of a next-token distribution known only through its top-k probabilities.

A server hands back the k most likely tokens with their probabilities, not the logits, so the
full-vocabulary statistics of :mod:`harness.stats.entropy` cannot be computed. What the top-k
does fix, with the missing ``tail_mass`` t = 1 − Σ top-k and the vocabulary size V, is marked
``truncated`` and given as bounds with a point estimate inside them:

- entropy (bits): ``entropy_bounds_bits`` [lo, hi] — lo with the tail as concentrated as the top-k
  allows (tokens no likelier than the k-th), hi with the tail spread evenly over the other V − k
  tokens; both tight (some distribution with this top-k attains each), equal and exact when
  t = 0; hi is +inf when V is unknown. ``entropy_bits`` is the estimate of
  :func:`entropy_estimate_bits`: the middle of [lo, hi] (lo when hi is unbounded).
- eot_prob: ``eot_prob_bounds`` [the end-of-generation tokens listed, + at most p_k for each one
  not listed, never more than t]; ``eot_prob`` is the listed part (the lower bound).
- varentropy (bits²): of the top-k plus the tail taken as one outcome (no bound).
- surprisal (bits): −log2 p(chosen), exact whenever the server reports the chosen token's
  probability (it always does for llama-server and OpenAI-compatible logprobs).
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


def _plogp_bits(p: float) -> float:
    """-p log2 p, 0 at p = 0."""
    return -p * math.log2(p) if p > 0.0 else 0.0


def entropy_bounds_bits(probs: Sequence[float], n_vocab: int | None, *,
                        by_id: bool = True) -> tuple[float, float]:
    """[lo, hi] (bits) of the full distribution's entropy, given its k most likely probabilities
    `probs` and its vocabulary size (None or 0: unknown, hi = +inf).

    Every unlisted token is at most as likely as the k-th, p_k, and the unlisted mass is t.
    - lo: the tail as concentrated as it can be — ⌊t / p_k⌋ tokens of p_k and one of the rest
      (a distribution majorising every other the top-k allows, so its entropy is the least);
    - hi: the tail spread evenly over the other V − k tokens (each t / (V − k) ≤ p_k), the most.
    Both are attained by some distribution with this top-k: the bounds are tight. When t = 0 they
    meet at the exact entropy. `by_id` false: a list keyed by token *text* (OpenAI-compatible
    logprobs) may have merged tokens that share a text, so an unlisted token may be likelier than
    the k-th and lo falls back to the tail taken as one outcome (always a lower bound)."""
    listed = [p for p in probs if p > 0.0]
    head = math.fsum(_plogp_bits(p) for p in listed)
    tail = tail_mass(probs)
    rest = (n_vocab - len(probs)) if n_vocab else 0
    if tail <= 0.0 or not listed or (n_vocab and rest <= 0):  # nothing unlisted: t is rounding
        return head, head
    p_k = min(listed) if by_id else tail
    full, rem = divmod(tail, p_k)
    if rest > 0:  # servers round: never fill more tokens than the vocabulary has
        full = min(full, rest)
        rem = tail - full * p_k if full < rest else 0.0
    lo = head + full * _plogp_bits(p_k) + _plogp_bits(rem)
    hi = head + tail * math.log2(rest / tail) if rest > 0 else math.inf
    return lo, max(lo, hi)


def entropy_estimate_bits(probs: Sequence[float], n_vocab: int | None, *, by_id: bool = True) -> float:
    """The point estimate of the full entropy: the middle of :func:`entropy_bounds_bits` (the
    lower bound when the upper is unbounded). Measured on the bundled models' replies
    (bench/topk_bounds.py) the truth sits at 0.35-0.41 of the way from lo to hi, so the middle is
    off by 0.05-0.06 bits on average at k = 100, less than a third of the lower bound's error; a
    power-law continuation of the top-k's decay did worse than the middle on both models."""
    lo, hi = entropy_bounds_bits(probs, n_vocab, by_id=by_id)
    return lo if math.isinf(hi) else (lo + hi) / 2.0


def eot_prob_bounds(top: Sequence[tuple[int, float]], eog_ids: Iterable[int], *,
                    by_id: bool = True) -> tuple[float, float]:
    """[lo, hi] of the end-of-generation probability: the listed end-of-generation tokens, plus at
    most p_k for each one not listed (never more than the tail; `by_id` false: up to the tail)."""
    eog = set(eog_ids)
    listed = math.fsum(p for i, p in top if i in eog)
    missing = len(eog - {i for i, _ in top})
    p_k = min((p for _, p in top if p > 0.0), default=1.0) if by_id else 1.0
    return listed, listed + min(tail_mass([p for _, p in top]), missing * p_k)


def surprisal_bits_of(prob: float | None) -> float:
    """−log2 p; NaN when the probability is unknown, +inf when it is 0."""
    if prob is None:
        return math.nan
    return math.inf if prob <= 0.0 else -math.log2(prob)


TOP_KEPT = 10  # alternatives a record keeps of a longer top-k list (the statistics use all of it)


def truncated_stats(top: Sequence[tuple[int, float]], chosen_prob: float | None,
                    eog_ids: Iterable[int], n_vocab: int | None = None, *, by_id: bool = True) -> StepStats:
    """StepStats from `top` = [(token id, probability)], most likely first (ids < 0 are tokens
    the server named only by text), for a vocabulary of `n_vocab` tokens (None: unknown); `by_id`:
    the server listed the top-k by token id (llama-server), not by text (see entropy_bounds_bits)."""
    probs = [p for _, p in top]
    _, varentropy = lumped_entropy_bits(probs)
    eot = eot_prob_bounds(top, eog_ids, by_id=by_id)
    return StepStats(entropy_estimate_bits(probs, n_vocab, by_id=by_id), surprisal_bits_of(chosen_prob), eot[0],
                     tuple(i for i, _ in top[:TOP_KEPT]), tuple(probs[:TOP_KEPT]), varentropy,
                     truncated=True, tail_mass=tail_mass(probs),
                     entropy_bounds_bits=entropy_bounds_bits(probs, n_vocab, by_id=by_id), eot_prob_bounds=eot)
