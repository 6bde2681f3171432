"""Sampling settings and the sampler, in the order llama-cpp-python's completion path uses.

Order: logit biases (EOS ban included) -> penalties (repetition, presence, frequency) -> DRY
-> top-k -> typical -> top-p -> min-p -> XTC (each on the temperature-1 probabilities of the
survivors) -> temperature -> draw; or, with mirostat 2, the biases and penalties -> mirostat ->
draw (llama-cpp-python adds no temperature there). DRY and XTC are not in llama-cpp-python's
chain; they sit where llama.cpp's common sampler puts them. Temperature 0 is greedy. Each step is
checked against llama.cpp's own sampler on the same logits (tests/test_samplers.py).

The model's logits are never written to: the sampler works on a small candidate set whenever
top-k allows it, so a step costs one partial sort of the vocabulary (mirostat sorts it all).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

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
                recent: Sequence[int], params: SamplingParams, dry: Mapping[int, float] | None = None) -> dict[int, float]:
    """New logit values for the tokens biases, bans and the penalties touch. A token in the
    window (`recent`) is divided by the repetition penalty (multiplied when its logit is not
    positive), then loses presence_penalty once and frequency_penalty per occurrence — as
    llama.cpp's penalties sampler does; then each token in `dry` loses that much
    (harness.generation.dry)."""
    out: dict[int, float] = {}
    for token, value in bias.items():
        out[token] = float(logits[token]) + value
    rp, presence, frequency = params.repeat_penalty, params.presence_penalty, params.frequency_penalty
    if rp != 1.0 or presence or frequency:
        for token, count in Counter(recent).items():
            current = out.get(token, float(logits[token]))
            current = current / rp if current > 0 else current * rp
            out[token] = current - count * frequency - presence
    for token, penalty in (dry or {}).items():
        out[token] = out.get(token, float(logits[token])) - penalty
    for token in banned:
        out[token] = -np.inf
    return out


@dataclass
class Mirostat:
    """Mirostat 2's state for one sequence: mu, the surprise (bits) a kept token may have; it
    starts at 2 tau and moves by eta times the error of each drawn token's surprise."""

    tau: float
    eta: float
    mu: float = field(init=False)

    def __post_init__(self) -> None:
        self.mu = 2.0 * self.tau

    def keep(self, probs: np.ndarray) -> int:
        """How many of `probs` (sorted, descending) survive: those of surprise <= mu, at least one."""
        with np.errstate(divide="ignore"):
            over = np.flatnonzero(-np.log2(probs) > self.mu)
        return max(int(over[0]) if len(over) else len(probs), 1)

    def update(self, drawn_prob: float) -> None:
        self.mu -= self.eta * (-math.log2(drawn_prob) - self.tau)


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator,
           adjust: Mapping[int, float], raw_top: Callable[[int], np.ndarray] | None = None) -> int:
    """Draw the next token id from a 1-D logits view."""
    return sample_with_entropy(logits, params, rng, adjust, raw_top)[0]


def sample_with_entropy(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator,
                        adjust: Mapping[int, float], raw_top: Callable[[int], np.ndarray] | None = None,
                        mirostat: Mirostat | None = None) -> tuple[int, float]:
    """(token id, entropy in bits of the distribution it was drawn from): after biases,
    penalties, the truncations and temperature (or mirostat 2, given its state). Greedy draws
    from a point mass: 0 bits."""
    if params.temperature <= 0:
        ids, values = candidate_logits(logits, adjust, params.top_k, raw_top)
        return int(ids[int(np.argmax(values))]), 0.0
    ids, weights = distribution(logits, params, rng, adjust, raw_top, mirostat)
    index = int(rng.choice(len(ids), p=weights))
    if mirostat is not None:
        mirostat.update(float(weights[index]))
    nonzero = weights[weights > 0]
    drawn_bits = max(float(-(nonzero * np.log2(nonzero)).sum()), 0.0)
    return int(ids[index]), drawn_bits


def distribution(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator,
                 adjust: Mapping[int, float], raw_top: Callable[[int], np.ndarray] | None = None,
                 mirostat: Mirostat | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) the next token is drawn from (temperature > 0), sorted by logit.
    With mirostat: its truncation of the whole vocabulary, at temperature 1 (llama-cpp-python's
    order). Else top-k -> typical -> top-p -> min-p -> XTC (each on the temperature-1
    probabilities of the survivors) -> temperature. XTC draws from `rng` only when it is on."""
    ids, values = candidate_logits(logits, adjust, 0 if mirostat is not None else params.top_k, raw_top)
    if mirostat is None and 0 < params.top_k < len(values):
        keep = np.argpartition(values, -params.top_k)[-params.top_k:]
        ids, values = ids[keep], values[keep]
    order = np.argsort(-values, kind="stable")
    ids, values = ids[order], values[order].astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise CommandError("every token is banned or biased to -inf; nothing can be sampled")
    ids, values = ids[finite], values[finite]
    probs = _softmax(values)
    if mirostat is not None:
        cut = mirostat.keep(probs)
        return ids[:cut], _softmax(values[:cut])
    if params.typical_p < 1.0:
        keep = np.sort(_typical(probs, params.typical_p))
        ids, values = ids[keep], values[keep]
        probs = _softmax(values)
    if params.top_p < 1.0:
        cut = int(np.searchsorted(np.cumsum(probs), params.top_p)) + 1
        ids, values, probs = ids[:cut], values[:cut], probs[:cut]
    if params.min_p > 0.0:
        keep = probs >= params.min_p * probs[0]
        ids, values = ids[keep], values[keep]
    if params.xtc_probability > 0 and params.xtc_threshold <= 0.5 and len(ids) >= 2 \
            and rng.random() <= params.xtc_probability:
        above = int(np.count_nonzero(_softmax(values) >= params.xtc_threshold))
        if above > 1:  # all but the least likely of the tokens above the threshold go
            ids, values = ids[above - 1:], values[above - 1:]
    return ids, _softmax(values, params.temperature)


def _softmax(values: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities of logits sorted in descending order (float64), at `temperature`."""
    weights = np.exp((values - values[0]) / temperature)
    return weights / weights.sum()


def _typical(probs: np.ndarray, mass: float) -> np.ndarray:
    """Positions of the locally typical tokens: those whose surprise is closest to the entropy
    (nats), taken until their mass exceeds `mass`, at least one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        surprise = -np.log(probs)
        entropy = float(np.nansum(probs * surprise))
    order = np.argsort(np.abs(surprise - entropy), kind="stable")
    over = np.flatnonzero(np.cumsum(probs[order]) > mass)
    return order[: int(over[0]) + 1 if len(over) else len(order)]
