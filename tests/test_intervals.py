"""Intervals over conversations: the t distribution, Student-t on conversation means, paired and
Welch differences, the power line, and coverage at the numbers of conversations people run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.stats.bootstrap import nested_mean_ci
from harness.stats.intervals import (
    NONE,
    T_CONVERSATIONS,
    T_TURNS,
    WELCH,
    conversation_mean_ci,
    conversations_needed,
    difference_ci,
    ratio_t_interval,
    t_interval_of_means,
)
from harness.stats.student_t import normal_quantile, t_cdf, t_quantile


@pytest.mark.parametrize(("p", "df", "expected"), [
    (0.975, 1, 12.706205), (0.975, 2, 4.302653), (0.975, 4, 2.776445), (0.975, 7, 2.364624),
    (0.975, 15, 2.131450), (0.975, 29, 2.045230), (0.8, 1, 1.376382), (0.8, 9, 0.883404),
    (0.995, 3, 5.840909), (0.025, 2, -4.302653), (0.5, 5, 0.0), (0.975, math.inf, 1.959964),
])
def test_t_quantiles_against_the_printed_tables(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-6)
    if math.isfinite(df) and p != 0.5:
        assert t_cdf(expected, df) == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize(("p", "expected"), [(0.975, 1.959964), (0.8, 0.841621), (0.5, 0.0), (0.05, -1.644854)])
def test_normal_quantiles(p, expected):
    assert normal_quantile(p) == pytest.approx(expected, abs=2e-6)


def test_three_conversations_get_student_t_on_their_means_and_say_so():
    # three conversations, two turns each, unequal lengths: the interval is Student-t on the three
    # conversation means (token-weighted within each), df = 2
    groups = ["a", "a", "b", "b", "c", "c"]
    sums = [2.0, 4.0, 30.0, 6.0, 1.0, 1.0]
    counts = [2, 2, 10, 2, 1, 1]
    means = np.array([6.0 / 4, 36.0 / 12, 2.0 / 2])
    ci = conversation_mean_ci(groups, sums, counts)
    half = 4.302653 * means.std(ddof=1) / math.sqrt(3)
    assert ci.mean == pytest.approx(means.mean())
    assert (ci.low, ci.high) == (pytest.approx(means.mean() - half), pytest.approx(means.mean() + half))
    assert (ci.conversations, ci.method, ci.df, ci.count) == (3, T_CONVERSATIONS, 2.0, 18)
    # the bootstrap it replaces is far narrower on the same data
    boot = nested_mean_ci(groups, sums, counts, seed=1)
    assert ci.width >= 1.5 * (boot.high - boot.low)


@pytest.mark.parametrize(("groups", "sums", "counts", "method", "low_is_none"), [
    (["a", "a", "a"], [1.0, 2.0, 6.0], [1, 1, 2], T_TURNS, False),  # one conversation, three turns
    (["a"], [4.0], [2], NONE, True),  # one turn: no interval
    (["a", "b"], [4.0, 0.0], [2, 0], NONE, True),  # a conversation without tokens is dropped
])
def test_one_conversation(groups, sums, counts, method, low_is_none):
    ci = conversation_mean_ci(groups, sums, counts)
    assert ci.method == method and ci.conversations == 1 and (ci.low is None) == low_is_none
    assert ci.mean == pytest.approx(sum(sums) / sum(counts))


def test_no_tokens_no_interval():
    assert conversation_mean_ci([], [], []) is None
    assert conversation_mean_ci(["a"], [0.0], [0]) is None


def test_ratio_interval_with_equal_counts_is_student_t_on_the_unit_means():
    values = [1.0, 3.0, 2.0, 6.0]
    ratio = ratio_t_interval([2 * v for v in values], [2] * 4)
    plain = t_interval_of_means(values)
    assert ratio == pytest.approx(plain)


def test_paired_difference_is_student_t_on_per_conversation_differences():
    a = (["x", "y", "z"], [1.0, 4.0, 3.0], [1, 1, 1])
    b = (["z", "x", "y"], [1.0, 0.0, 2.0], [1, 1, 1])  # order does not matter: matched by name
    d = difference_ci(a, b)
    diffs = np.array([1.0, 2.0, 2.0])
    half = 4.302653 * diffs.std(ddof=1) / math.sqrt(3)
    assert d.paired and d.method == T_CONVERSATIONS and d.conversations == (3, 3)
    assert (d.difference, d.low, d.high) == (pytest.approx(diffs.mean()), pytest.approx(diffs.mean() - half),
                                             pytest.approx(diffs.mean() + half))
    assert d.sd == pytest.approx(diffs.std(ddof=1))


def test_unpaired_difference_is_welch():
    a = (["p", "q", "r", "s"], [1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1])
    b = (["u", "v", "w"], [0.0, 4.0, 8.0], [1, 1, 1])
    d = difference_ci(a, b)
    va, vb = np.var([1, 2, 3, 4], ddof=1) / 4, np.var([0, 4, 8], ddof=1) / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    half = t_quantile(0.975, df) * math.sqrt(va + vb)
    assert not d.paired and d.method == WELCH and d.df == pytest.approx(df)
    assert (d.low, d.high) == (pytest.approx(2.5 - 4.0 - half), pytest.approx(2.5 - 4.0 + half))


@pytest.mark.parametrize(("sd", "effect", "paired", "expected"), [
    (1.0, 0.5, True, 34), (1.0, 0.8, True, 15), (1.0, 0.2, True, 199), (1.0, -0.5, True, 34),  # G*Power's tables
    (1.0, 0.5, False, 64),  # two independent groups, d = 0.5: 64 per group
    (1.0, 0.0, True, None),
])
def test_conversations_needed_for_80_percent_power(sd, effect, paired, expected):
    assert conversations_needed(sd, effect, paired=paired) == expected


def test_the_power_line_from_an_observed_difference():
    # the numbers: sd about 1 bit per conversation, 0.5 bits needs some 25-50 conversations
    d = difference_ci((list("abcdef"), [0.1, 1.9, 0.3, 2.2, -0.4, 1.1], [1] * 6),
                      (list("abcdef"), [0.0] * 6, [1] * 6))
    assert d.needed() == conversations_needed(d.sd, d.difference)
    assert d.to_dict()["conversations_needed"] == d.needed()


def _coverage(method, conversations: int, trials: int, rng: np.random.Generator) -> float:
    """Turns of 5 seeds per conversation whose tokens share a conversation effect (sd 1) and a
    turn effect (sd 0.3); the true mean is 0."""
    hits = 0
    for i in range(trials):
        effect = rng.normal(0.0, 1.0, size=conversations)
        groups, sums, counts = [], [], []
        for g in range(conversations):
            for _ in range(5):
                n = int(rng.integers(10, 50))
                groups.append(g)
                sums.append(float((effect[g] + rng.normal(0.0, 0.3) + rng.normal(0.0, 0.5, size=n)).sum()))
                counts.append(n)
        ci = method(groups, sums, counts, i)
        hits += ci.low <= 0.0 <= ci.high
    return hits / trials


def test_student_t_keeps_95_percent_at_three_conversations_where_the_bootstrap_does_not():
    t_cov = _coverage(lambda g, s, c, i: conversation_mean_ci(g, s, c), 3, 400, np.random.default_rng(21))
    boot_cov = _coverage(lambda g, s, c, i: nested_mean_ci(g, s, c, replicates=400, seed=i), 3, 400,
                         np.random.default_rng(21))
    assert t_cov >= 0.93  # measured 0.95 (bench/coverage.py: 0.95 over 4000 trials)
    assert boot_cov <= 0.85  # measured 0.79


def test_partly_shared_conversations_pair_on_the_ones_both_have():
    a = (["x", "y", "z", "w"], [1.0, 4.0, 3.0, 9.0], [1, 1, 1, 1])
    b = (["x", "y", "z", "v"], [0.0, 2.0, 2.0, -5.0], [1, 1, 1, 1])
    d = difference_ci(a, b)
    diffs = np.array([1.0, 2.0, 1.0])
    assert d.paired and d.conversations == (3, 3) and d.available == (4, 4)
    assert (d.mean_a, d.mean_b, d.difference) == (pytest.approx(8 / 3), pytest.approx(4 / 3), pytest.approx(diffs.mean()))
    assert d.to_dict()["conversations_available"] == [4, 4]
    single = difference_ci((["x", "y"], [1.0, 2.0], [1, 1]), (["x", "q"], [0.0, 1.0], [1, 1]))
    assert not single.paired and single.method == WELCH  # one shared conversation: not enough to pair
