"""Diversity across samples on hand-made texts, and the conversation-then-turn bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.experiment.db import report_turns
from harness.experiment.summary import condition_diversity
from harness.stats.bootstrap import cluster_mean_ci, nested_mean_ci
from harness.stats.diversity import (
    distinct_n,
    expectation_adjusted_distinct,
    expected_distinct,
    first_word_entropy_bits,
    unique_fraction,
)
from tests.support.runs import fake_run, report_summary

TEXTS = ["The cat sat", "the cat ran", "A dog sat", "The cat sat"]


def test_distinct_n_on_hand_made_texts():
    # words: the cat sat | the cat ran | a dog sat | the cat sat -> 12 unigrams, unique {the cat sat ran a dog} = 6
    assert distinct_n(TEXTS, 1) == pytest.approx(6 / 12)
    # bigrams: (the cat)x3 (cat sat)x2 (cat ran) (a dog) (dog sat) -> 8 bigrams, 5 unique
    assert distinct_n(TEXTS, 2) == pytest.approx(5 / 8)
    assert unique_fraction(TEXTS) == pytest.approx(3 / 4)  # case counts: "The cat sat" twice
    # first words: the x3, a x1
    assert first_word_entropy_bits(TEXTS) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


@pytest.mark.parametrize(("texts", "d1", "d2", "uniq", "h"), [
    (["same answer here"] * 5, 3 / 15, 2 / 10, 1 / 5, 0.0),  # full collapse
    (["alpha beta", "gamma delta", "epsilon zeta"], 1.0, 1.0, 1.0, math.log2(3)),  # all different
    (["one", "two"], 1.0, None, 1.0, 1.0),  # no bigram at all
    (["", "x y"], 1.0, 1.0, 1.0, 1.0),  # an empty text's first word is ""
])
def test_diversity_table(texts, d1, d2, uniq, h):
    assert distinct_n(texts, 1) == pytest.approx(d1)
    assert distinct_n(texts, 2) == (pytest.approx(d2) if d2 is not None else None)
    assert unique_fraction(texts) == pytest.approx(uniq)
    assert first_word_entropy_bits(texts) == pytest.approx(h)


def test_condition_diversity_is_the_plain_mean_over_conversations():
    triples = ([("c", "a", t) for t in ["x y", "x y"]]  # distinct-1 2/4, distinct-2 1/2, unique 1/2
               + [("c", "b", t) for t in ["p q r", "s t u", "v w z"]])  # all 1.0
    d = condition_diversity(triples)["c"]
    assert d["conversations"] == 2
    assert d["distinct_1"] == pytest.approx((0.5 + 1.0) / 2)
    assert d["distinct_2"] == pytest.approx((0.5 + 1.0) / 2)
    assert d["unique_fraction"] == pytest.approx((0.5 + 1.0) / 2)
    assert d["first_word_entropy_bits"] == pytest.approx((0.0 + math.log2(3)) / 2)
    # Student-t on the two conversation means (0.5, 1.0): se 0.25, t(0.975, df 1) = 12.706
    lo, hi = d["ci95"]["distinct_1"]
    assert (lo, hi) == (pytest.approx(0.75 - 12.7062 * 0.25, abs=1e-3), pytest.approx(0.75 + 12.7062 * 0.25, abs=1e-3))
    assert d["interval"] == "t-conversations"


def test_summary_json_rows_of_generated_tokens_carry_diversity(tmp_path):
    _, run_id, _, _, _ = fake_run(tmp_path)
    rows = report_summary(tmp_path / "fake.sqlite", run_id)
    generated = [r for r in rows if r["scope"] == "generated"]
    assert generated and all(set(r["diversity"]) == {"distinct_1", "distinct_2", "unique_fraction",
                                                     "first_word_entropy_bits", "ead_1", "ead_2", "conversations",
                                                     "interval", "ci95"}
                             for r in generated)
    assert all("diversity" not in r for r in rows if r["scope"] == "prompt")
    # recomputed from the stored texts, per conversation then averaged
    turns = report_turns(tmp_path / "fake.sqlite", run_id)
    for row in generated:
        if "past_eos_class" in row:
            continue  # a past-eos class's own row
        mine = [t for t in turns if t["label"].rsplit(" · seed ", 1)[0] == row["condition"]]
        per = [unique_fraction([t["text"] for t in mine if t["condition"]["conversation"] == c])
               for c in ("a", "b")]
        assert row["diversity"]["conversations"] == 2
        assert row["diversity"]["unique_fraction"] == pytest.approx(sum(per) / 2)


def _synthetic(rng, conversations=8, seeds=5):
    """Turns whose tokens share a conversation effect (sd 1) and a turn effect (sd 0.3): the
    seeds of one conversation are far from independent. The true mean is 0."""
    effect = rng.normal(0.0, 1.0, size=conversations)
    groups, sums, counts = [], [], []
    for g in range(conversations):
        for _ in range(seeds):
            n = int(rng.integers(10, 50))
            x = effect[g] + rng.normal(0.0, 0.3) + rng.normal(0.0, 0.5, size=n)
            groups.append(g)
            sums.append(float(x.sum()))
            counts.append(n)
    return groups, sums, counts


def test_conversation_level_interval_covers_where_turn_level_does_not():
    rng = np.random.default_rng(7)
    trials, nested_hits, turn_hits = 200, 0, 0
    for i in range(trials):
        groups, sums, counts = _synthetic(rng)
        nested = nested_mean_ci(groups, sums, counts, replicates=1000, seed=i)
        turns = cluster_mean_ci(sums, counts, replicates=1000, seed=i)
        assert nested.mean == pytest.approx(turns.mean)
        nested_hits += nested.low <= 0.0 <= nested.high
        turn_hits += turns.low <= 0.0 <= turns.high
    assert nested_hits / trials >= 0.88  # measured 0.92 with 8 conversations x 5 seeds
    assert turn_hits / trials < 0.70  # measured 0.615: turns are not the unit


def test_nested_interval_edges_and_one_turn_per_conversation():
    assert nested_mean_ci([], [], []) is None
    single = nested_mean_ci(["a"], [6.0], [3])
    assert single.low == single.high == single.mean == 2.0
    rng = np.random.default_rng(1)
    values = rng.normal(size=40)
    nested = nested_mean_ci(list(range(40)), values, np.ones(40), seed=3)
    plain = cluster_mean_ci(values, np.ones(40), seed=3)
    assert nested.mean == pytest.approx(plain.mean)
    assert (nested.high - nested.low) == pytest.approx(plain.high - plain.low, rel=0.2)
    assert nested_mean_ci(["a", "a", "b"], [1.0, 2.0, 3.0], [1, 1, 1], seed=2) == \
        nested_mean_ci(["a", "a", "b"], [1.0, 2.0, 3.0], [1, 1, 1], seed=2)


@pytest.mark.parametrize(("draws", "vocabulary", "expected"), [
    (1, 10, 1.0), (2, 2, 1.5), (3, 2, 1.75),  # by hand: 2 * (1 - (1/2)^3)
    (100, 10 ** 12, 100.0),  # a huge vocabulary: nothing repeats by chance
    (10 ** 6, 50, 50.0),  # every value drawn
])
def test_expected_distinct_by_hand(draws, vocabulary, expected):
    assert expected_distinct(draws, vocabulary) == pytest.approx(expected, rel=1e-6)


def test_ead_does_not_fall_with_length_where_distinct_n_does():
    """Texts drawn uniformly from a 200-word vocabulary: distinct-1 falls as they get longer,
    EAD-1 stays about 1 (it divides by what chance gives at that length)."""
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(200)]
    plain, adjusted = [], []
    for length in (20, 100, 400):
        texts = [" ".join(rng.choice(vocab, size=length)) for _ in range(3)]
        plain.append(distinct_n(texts, 1))
        adjusted.append(expectation_adjusted_distinct(texts, 1, 200))
    assert plain[0] > plain[1] > plain[2] and plain[2] < 0.5
    assert all(a == pytest.approx(1.0, abs=0.08) for a in adjusted)
    assert expectation_adjusted_distinct(["same same same same"] * 3, 1, 200) < 0.2
    assert expectation_adjusted_distinct(["one"], 2, 200) is None
