"""Statistics from a top-k list: exact when nothing is missing, tight bounds otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats.entropy import StatsWorkspace
from harness.stats.topk import (
    entropy_bounds_bits,
    entropy_estimate_bits,
    eot_prob_bounds,
    lumped_entropy_bits,
    tail_mass,
    truncated_stats,
)


@pytest.mark.parametrize("probs,entropy", [
    ([1.0], 0.0),                      # one-hot
    ([0.25] * 4, 2.0),                 # uniform over everything: log2 4
    ([0.5], 1.0),                      # half listed, half in the tail (one outcome)
    ([0.25, 0.25], 1.5),               # tail 0.5 lumped
    ([0.6, 0.45], 0.0 + -0.6 / 1.05 * math.log2(0.6 / 1.05) - 0.45 / 1.05 * math.log2(0.45 / 1.05)),
])
def test_lumped_entropy(probs, entropy):
    assert lumped_entropy_bits(probs)[0] == pytest.approx(entropy)


def test_tail_mass_is_clamped():
    assert tail_mass([0.7, 0.2]) == pytest.approx(0.1)
    assert tail_mass([0.6, 0.45]) == 0.0  # servers round


def test_lower_bound_of_the_full_distribution():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 500).astype(np.float32)
    full = StatsWorkspace(500, [3, 7], top_k=10).step(logits, 5)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top = [(int(i), float(probs[i])) for i in np.argsort(-probs)[:10]]
    stats = truncated_stats(top, float(probs[5]), [3, 7], 500)
    assert stats.truncated and stats.tail_mass == pytest.approx(1 - sum(p for _, p in top))
    lo, hi = stats.entropy_bounds_bits
    assert lo - 1e-9 <= full.entropy_bits <= hi + 1e-9 and lo <= stats.entropy_bits <= hi
    assert stats.surprisal_bits == pytest.approx(full.surprisal_bits, abs=1e-5)
    assert stats.eot_prob <= full.eot_prob + 1e-9
    assert stats.eot_prob + stats.tail_mass >= full.eot_prob - 1e-9
    everything = truncated_stats([(i, float(p)) for i, p in enumerate(probs)], float(probs[5]), [3, 7])
    assert everything.entropy_bits == pytest.approx(full.entropy_bits, abs=1e-4)
    assert everything.varentropy_bits2 == pytest.approx(full.varentropy_bits2, rel=1e-3)
    assert everything.eot_prob == pytest.approx(full.eot_prob, abs=1e-6)


def test_unknown_chosen_probability_is_nan():
    assert math.isnan(truncated_stats([(1, 0.9)], None, []).surprisal_bits)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@pytest.mark.parametrize("seed", range(40))
def test_bounds_hold_the_truth_and_the_estimate_lies_inside(seed):
    """Random distributions of every shape (flat, peaked, Zipf-like), vocabularies 20..5000, k 1..V."""
    rng = np.random.default_rng(seed)
    vocab = int(rng.integers(20, 5000))
    logits = rng.normal(0, rng.uniform(0.1, 6), vocab) if seed % 2 else -rng.uniform(0.5, 2) * np.log(
        np.arange(1, vocab + 1)) + rng.normal(0, 0.3, vocab)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p)
    eog = [int(i) for i in rng.choice(vocab, 3, replace=False)]
    for k in (1, 5, 50, vocab - 1, vocab):
        k = min(k, vocab)
        top = [(int(i), float(p[i])) for i in order[:k]]
        probs = [q for _, q in top]
        lo, hi = entropy_bounds_bits(probs, vocab)
        truth = _entropy(p)
        assert lo - 1e-9 <= truth <= hi + 1e-9, (k, lo, truth, hi)
        assert lo <= entropy_estimate_bits(probs, vocab) <= hi
        eot_lo, eot_hi = eot_prob_bounds(top, eog)
        assert eot_lo - 1e-12 <= float(p[eog].sum()) <= eot_hi + 1e-12
        loose_lo, loose_hi = entropy_bounds_bits(probs, vocab, by_id=False)
        assert loose_lo <= lo + 1e-12 and loose_hi == hi  # by text only the lumped bound is sure
        if k == vocab:
            assert hi - lo < 1e-9  # nothing missing: exact


def test_bounds_are_attained():
    """The lower bound is the entropy of the most concentrated tail the top-k allows, the upper
    of the evenly spread one: each is a distribution with the same top-k, so neither can move in."""
    top = [0.4, 0.2, 0.1]  # tail 0.3 over 7 more tokens
    lo, hi = entropy_bounds_bits(top, 10)
    concentrated = np.array(top + [0.1, 0.1, 0.1, 0, 0, 0, 0])
    spread = np.array(top + [0.3 / 7] * 7)
    assert lo == pytest.approx(_entropy(concentrated)) and hi == pytest.approx(_entropy(spread))


@pytest.mark.parametrize("vocab,k", [(8, 3), (1000, 10), (49152, 100)])
def test_uniform_distribution_bounds_meet_at_log2_v(vocab, k):
    lo, hi = entropy_bounds_bits([1.0 / vocab] * k, vocab)
    assert lo == pytest.approx(math.log2(vocab)) and hi == pytest.approx(math.log2(vocab))


def test_one_hot_and_unknown_vocabulary():
    assert entropy_bounds_bits([1.0], 50) == (0.0, 0.0)
    lo, hi = entropy_bounds_bits([0.5, 0.25], None)
    assert lo == pytest.approx(1.5) and hi == math.inf
    assert entropy_estimate_bits([0.5, 0.25], None) == lo  # without V: the lower bound
