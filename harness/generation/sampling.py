"""Sampling settings and the sampler, in the order llama-cpp-python's completion path uses.

Order: logit biases (EOS ban included) -> repetition penalty -> top-k -> top-p -> min-p
(both on the temperature-1 probabilities of the survivors) -> temperature -> draw. Temperature
0 is greedy. The model's logits are never written to: the sampler works on a small candidate
set whenever top-k allows it, so a step costs one partial sort of the vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from harness.errors import CommandError
from harness.generation.settings import SamplingParams


def candidate_logits(logits: np.ndarray, adjust: Mapping[int, float], top_k: int,
                     raw_top: Callable[[int], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, adjusted logits) of the tokens that can survive top-k after `adjust` is applied.

    `adjust` maps token id -> new logit (bias, ban and penalty already applied). Tokens not in
    `adjust` keep their logit, so the top-k of the adjusted vector lies within the raw top
    (k + len(adjust)) plus the adjusted ids. `raw_top(n)`, when given, returns the n largest raw
    logits' ids (the statistics pass already knows them cheaply).
    """
    n_vocab = logits.shape[0]
    if top_k <= 0 or top_k + len(adjust) >= n_vocab:
        ids = np.arange(n_vocab)
        values = np.array(logits, dtype=np.float32)
    else:
        want = top_k + len(adjust)
        best = raw_top(want) if raw_top is not None else np.argpartition(logits, -want)[-want:]
        ids = np.union1d(best, np.fromiter(adjust.keys(), dtype=np.intp, count=len(adjust)))
        values = logits[ids].astype(np.float32)
    if adjust:
        keys = np.fromiter(adjust.keys(), dtype=np.intp, count=len(adjust))
        positions = np.searchsorted(ids, keys)
        values[positions] = np.fromiter(adjust.values(), dtype=np.float32, count=len(adjust))
    return ids, values


def adjustments(logits: np.ndarray, bias: Mapping[int, float], banned: Sequence[int],
                recent: Sequence[int], repeat_penalty: float) -> dict[int, float]:
    """New logit values for the tokens biases, bans and the repetition penalty touch."""
    out: dict[int, float] = {}
    for token, value in bias.items():
        out[token] = float(logits[token]) + value
    if repeat_penalty != 1.0:
        for token in set(recent):
            current = out.get(token, float(logits[token]))
            out[token] = current / repeat_penalty if current > 0 else current * repeat_penalty
    for token in banned:
        out[token] = -np.inf
    return out


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator,
           adjust: Mapping[int, float], raw_top: Callable[[int], np.ndarray] | None = None) -> int:
    """Draw the next token id from a 1-D logits view."""
    return sample_with_entropy(logits, params, rng, adjust, raw_top)[0]


def sample_with_entropy(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator,
                        adjust: Mapping[int, float],
                        raw_top: Callable[[int], np.ndarray] | None = None) -> tuple[int, float]:
    """(token id, entropy in bits of the distribution it was drawn from): after biases,
    penalty, top-k / top-p / min-p and temperature. Greedy draws from a point mass: 0 bits."""
    ids, values = candidate_logits(logits, adjust, params.top_k, raw_top)
    if params.temperature <= 0:
        return int(ids[int(np.argmax(values))]), 0.0
    if 0 < params.top_k < len(values):
        keep = np.argpartition(values, -params.top_k)[-params.top_k:]
        ids, values = ids[keep], values[keep]
    order = np.argsort(-values, kind="stable")
    ids, values = ids[order], values[order].astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise CommandError("every token is banned or biased to -inf; nothing can be sampled")
    ids, values = ids[finite], values[finite]
    probs = np.exp(values - values[0])
    probs /= probs.sum()
    if params.top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(probs), params.top_p)) + 1
        ids, values, probs = ids[:cut], values[:cut], probs[:cut]
    if params.min_p > 0.0:
        keep = probs >= params.min_p * probs[0]
        ids, values = ids[keep], values[keep]
    scaled = (values - values[0]) / params.temperature
    weights = np.exp(scaled)
    weights /= weights.sum()
    nonzero = weights[weights > 0]
    drawn_bits = max(float(-(nonzero * np.log2(nonzero)).sum()), 0.0)
    return int(ids[int(rng.choice(len(ids), p=weights))]), drawn_bits
