"""Statistics of a next-token distribution known only through its top-k probabilities.

A server hands back the k most likely tokens with their probabilities, not the logits, so the
full-vocabulary statistics of :mod:`harness.stats.entropy` cannot be computed. What the top-k
does fix, with the missing ``tail_mass`` t = 1 − Σ top-k and the vocabulary size V, is marked
``truncated`` and given as bounds with a point estimate inside them:

- entropy (bits): ``entropy_bounds_bits`` [lo, hi] — lo with the tail as concentrated as the top-k
  allows (tokens no likelier than the k-th), hi with the tail spread evenly over the other V − k
  tokens; both tight (some distribution with this top-k attains each), equal and exact when
  t = 0; hi is +inf when V is unknown. ``entropy_bits`` is the estimate of
  :func:`entropy_estimate_bits` (the top-k's own power-law decay continued into the tail).
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


def _power_law_exponent(probs: Sequence[float]) -> float:
    """a in p_r ~ r^-a, least squares of ln p against ln r over the back half of the listed ranks."""
    pts = [(math.log(r), math.log(p)) for r, p in enumerate(probs, 1) if p > 0.0 and r > len(probs) // 2]
    if len(pts) < 2:
        return 1.0
    mx = math.fsum(x for x, _ in pts) / len(pts)
    my = math.fsum(y for _, y in pts) / len(pts)
    sxx = math.fsum((x - mx) ** 2 for x, _ in pts)
    slope = math.fsum((x - mx) * (y - my) for x, y in pts) / sxx if sxx > 0 else -1.0
    return min(max(-slope, 0.0), 8.0)


def _tail_entropy_bits(tail: float, a: float, first: float, last: float, steps: int = 96) -> float:
    """Entropy (bits) of mass `tail` spread as q(r) ∝ r^-a over ranks [first, last] (a continuous
    approximation, integrated over ln r)."""
    lo, hi = math.log(first), math.log(last)
    du = (hi - lo) / steps
    us = [lo + (i + 0.5) * du for i in range(steps)]
    weights = [math.exp((1.0 - a) * u) * du for u in us]  # r^-a dr with r = e^u
    z = math.fsum(weights)
    mean_ln_r = math.fsum(w * u for w, u in zip(weights, us, strict=True)) / z
    # q(r) = tail r^-a / z: -∫ q log2 q = tail (log2 z - log2 tail + a E[ln r] / ln 2)
    return tail * (math.log2(z) - math.log2(tail) + a * mean_ln_r / math.log(2.0))


def entropy_estimate_bits(probs: Sequence[float], n_vocab: int | None, *, by_id: bool = True) -> float:
    """A point estimate of the full entropy inside :func:`entropy_bounds_bits`: the listed
    probabilities continue their own decay into the tail — p_r ∝ r^-a with a fitted on the back
    half of the top-k — over the V − k unlisted ranks, scaled to the tail's mass, then clamped into
    [lo, hi]. Without a vocabulary size, the lower bound."""
    lo, hi = entropy_bounds_bits(probs, n_vocab, by_id=by_id)
    tail = tail_mass(probs)
    k = len(probs)
    if hi == lo or not n_vocab or n_vocab <= k or tail <= 0.0:
        return lo
    head = math.fsum(_plogp_bits(p) for p in probs if p > 0.0)
    estimate = head + _tail_entropy_bits(tail, _power_law_exponent(probs), k + 0.5, n_vocab + 0.5)
    return min(max(estimate, lo), hi)


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
