"""Statistics from a top-k list: exact when nothing is missing, lower bounds otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats.entropy import StatsWorkspace
from harness.stats.topk import lumped_entropy_bits, tail_mass, truncated_stats


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
    stats = truncated_stats(top, float(probs[5]), [3, 7])
    assert stats.truncated and stats.tail_mass == pytest.approx(1 - sum(p for _, p in top))
    assert stats.entropy_bits <= full.entropy_bits + 1e-9
    assert stats.surprisal_bits == pytest.approx(full.surprisal_bits, abs=1e-5)
    assert stats.eot_prob <= full.eot_prob + 1e-9
    assert stats.eot_prob + stats.tail_mass >= full.eot_prob - 1e-9
    everything = truncated_stats([(i, float(p)) for i, p in enumerate(probs)], float(probs[5]), [3, 7])
    assert everything.entropy_bits == pytest.approx(full.entropy_bits, abs=1e-4)
    assert everything.varentropy_bits2 == pytest.approx(full.varentropy_bits2, rel=1e-3)
    assert everything.eot_prob == pytest.approx(full.eot_prob, abs=1e-6)


def test_unknown_chosen_probability_is_nan():
    assert math.isnan(truncated_stats([(1, 0.9)], None, []).surprisal_bits)
