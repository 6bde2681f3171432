"""Entropy math and the sampler: the properties that catch real bugs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from harness.errors import CommandError
from harness.generation.sampling import adjustments, sample
from harness.generation.settings import SamplingParams
from harness.stats.entropy import StatsWorkspace, entropy_bits, summarize, surprisal_bits


def reference(logits: np.ndarray, token: int):
    x = logits.astype(np.float64)
    p = np.exp(x - x.max())
    p /= p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum()), float(-np.log2(p[token])), p


@pytest.mark.parametrize("n_vocab", [2, 1000, 262144])
def test_uniform_is_log2_vocab_and_onehot_is_zero(n_vocab):
    ws = StatsWorkspace(n_vocab, [0])
    uniform = np.zeros(n_vocab, dtype=np.float32)
    assert ws.step(uniform, 0).entropy_bits == pytest.approx(math.log2(n_vocab), abs=1e-4)
    onehot = np.full(n_vocab, -1e4, dtype=np.float32)
    onehot[1] = 0.0
    st = ws.step(onehot, 1)
    assert st.entropy_bits == pytest.approx(0.0, abs=1e-6)
    assert st.surprisal_bits == pytest.approx(0.0, abs=1e-6)
    assert st.top_ids[0] == 1 and st.top_probs[0] == pytest.approx(1.0)


def test_constant_shift_changes_nothing_and_matches_reference():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 5000).astype(np.float32)
    ws = StatsWorkspace(5000, [7, 9], top_k=5)
    a = ws.step(logits, 42)
    b = ws.step(logits + 123.0, 42)
    ent, sur, p = reference(logits, 42)
    for st in (a, b):
        assert st.entropy_bits == pytest.approx(ent, abs=1e-4)
        assert st.surprisal_bits == pytest.approx(sur, abs=1e-4)
        assert st.eot_prob == pytest.approx(p[7] + p[9], rel=1e-4)
        assert list(st.top_ids) == list(np.argsort(-p)[:5])
    assert entropy_bits(logits) == pytest.approx(ent, abs=1e-9)
    assert surprisal_bits(logits, 42) == pytest.approx(sur, abs=1e-9)


def test_batch_rows_equal_single_steps_and_surprisal_after_step():
    rng = np.random.default_rng(1)
    rows = rng.normal(0, 2, (6, 3000)).astype(np.float32)
    following = [5, 17, 2999, 0, 42, 7]
    ws = StatsWorkspace(3000, [1])
    batch = ws.rows(rows, following)
    for row, tok, st in zip(rows, following, batch, strict=True):
        single = ws.step(row, None)
        assert math.isnan(single.surprisal_bits)
        assert ws.surprisal_after_step(tok) == pytest.approx(st.surprisal_bits, abs=1e-4)
        assert single.entropy_bits == pytest.approx(st.entropy_bits, abs=1e-4)
        assert single.top_ids == st.top_ids


def test_summary_means_skip_missing_and_perplexity_is_two_to_the_mean():
    s = summarize([None, 1.0, 3.0], [None, 2.0, 4.0])
    assert s.tokens == 3 and s.mean_entropy_bits == 2.0 and s.mean_surprisal_bits == 3.0
    assert s.perplexity == pytest.approx(8.0)
    assert summarize([], []).perplexity is None


def test_greedy_top_k_one_and_ban():
    logits = np.array([0.0, 5.0, 1.0, 4.9], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample(logits, SamplingParams(temperature=0), rng, {}) == 1
    assert sample(logits, SamplingParams(temperature=1.5, top_k=1), rng, {}) == 1
    banned = adjustments(logits, {}, [1], [], 1.0)
    assert all(sample(logits, SamplingParams(temperature=2.0, top_k=0, top_p=1.0, min_p=0.0), rng, banned) != 1
               for _ in range(200))
    with pytest.raises(CommandError):
        sample(logits, SamplingParams(), rng, adjustments(logits, {}, [0, 1, 2, 3], [], 1.0))


def test_bias_can_promote_a_token_outside_top_k():
    logits = np.linspace(0, 10, 1000).astype(np.float32)
    rng = np.random.default_rng(0)
    adjust = adjustments(logits, {3: 100.0}, [], [], 1.0)
    assert sample(logits, SamplingParams(top_k=5), rng, adjust) == 3


def test_sampling_frequencies_follow_temperature_and_seed_is_deterministic():
    logits = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32))
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    rng = np.random.default_rng(123)
    counts = np.bincount([sample(logits, params, rng, {}) for _ in range(6000)], minlength=3) / 6000
    assert counts == pytest.approx([0.5, 0.3, 0.2], abs=0.03)
    draws = [sample(logits, params, np.random.default_rng(9), {}) for _ in range(3)]
    assert len(set(draws)) == 1


def test_top_p_and_min_p_cut_the_tail():
    logits = np.log(np.array([0.6, 0.3, 0.09, 0.01], dtype=np.float32))
    rng = np.random.default_rng(5)
    top_p = SamplingParams(temperature=1.0, top_k=0, top_p=0.85, min_p=0.0)
    assert {sample(logits, top_p, rng, {}) for _ in range(500)} == {0, 1}
    min_p = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.2)
    assert {sample(logits, min_p, rng, {}) for _ in range(500)} == {0, 1}


def test_repeat_penalty_follows_llama_cpp_sign_rule():
    logits = np.array([2.0, -2.0, 1.0], dtype=np.float32)
    adjust = adjustments(logits, {}, [], [0, 1], 2.0)
    assert adjust == {0: 1.0, 1: -4.0}


def test_params_validation():
    with pytest.raises(CommandError):
        SamplingParams().updated(top_p=0)
    with pytest.raises(CommandError):
        SamplingParams().updated(eos="sometimes")


@pytest.mark.parametrize("spread", [0.5, 5.0, 100.0])
def test_top_indices_is_exact_with_and_without_the_near_maximum_shortcut(spread):
    from harness.stats.entropy import top_indices

    rng = np.random.default_rng(int(spread))
    logits = rng.normal(0, spread, 262144).astype(np.float32)
    z = logits - logits.max()
    for k in (1, 5, 40, 104):
        expected = np.argsort(-z, kind="stable")[:k]
        assert list(top_indices(z, k)) == list(expected)


def test_sampler_with_shared_top_candidates_draws_the_same_tokens():
    rng_logits = np.random.default_rng(3)
    ws = StatsWorkspace(50000, [0])
    params = SamplingParams(temperature=0.9, top_k=40, repeat_penalty=1.2)
    for _ in range(20):
        logits = rng_logits.normal(0, 4, 50000).astype(np.float32)
        ws.step(logits, None)
        adjust = adjustments(logits, {7: 2.0}, [0], [1, 2, 3], params.repeat_penalty)
        a = sample(logits, params, np.random.default_rng(11), adjust)
        b = sample(logits, params, np.random.default_rng(11), adjust, ws.raw_top)
        assert a == b


def _reference_varentropy_bits2(logits: np.ndarray) -> float:
    x = logits.astype(np.float64)
    p = np.exp(x - x.max())
    p /= p.sum()
    log2p = np.log2(np.where(p > 0, p, 1.0))
    mean = float((p * log2p).sum())
    return float((p * log2p ** 2).sum() - mean ** 2)


def test_varentropy_is_zero_for_uniform_and_onehot_and_matches_reference():
    ws = StatsWorkspace(1000, [0])
    assert ws.step(np.zeros(1000, dtype=np.float32), 0).varentropy_bits2 == pytest.approx(0.0, abs=1e-6)
    onehot = np.full(1000, -1e4, dtype=np.float32)
    onehot[3] = 0.0
    assert ws.step(onehot, 3).varentropy_bits2 == pytest.approx(0.0, abs=1e-6)
    # two tokens at p = 0.5 and 100 at p = 0.005: -log2 p is 1 or ~7.64, so the variance is large
    mixed = np.full(102, math.log(0.005), dtype=np.float32)
    mixed[:2] = math.log(0.5 - 0.25)
    rng = np.random.default_rng(3)
    for logits in (mixed, rng.normal(0, 4, 262144).astype(np.float32)):
        ws = StatsWorkspace(logits.shape[0], [0])
        want = _reference_varentropy_bits2(logits)
        assert want > 0.5
        assert ws.step(logits, 0).varentropy_bits2 == pytest.approx(want, rel=1e-3)
        assert ws.rows(logits[None, :], [0])[0].varentropy_bits2 == pytest.approx(want, rel=1e-3)


def test_sampling_entropy_is_the_entropy_of_what_is_drawn_from():
    from harness.generation.sampling import sample_with_entropy

    logits = np.log(np.array([0.5, 0.25, 0.125, 0.125], dtype=np.float32))
    rng = np.random.default_rng(0)
    full = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    assert sample_with_entropy(logits, full, rng, {})[1] == pytest.approx(1.75, abs=1e-6)
    assert sample_with_entropy(logits, full.updated(top_k=2), rng, {})[1] == pytest.approx(
        -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3)), abs=1e-6)
    assert sample_with_entropy(logits, full.updated(temperature=0), rng, {})[1] == 0.0
    # a low temperature sharpens, a high one flattens, relative to the model's 1.75 bits
    assert sample_with_entropy(logits, full.updated(temperature=0.3), rng, {})[1] < 1.75
    assert sample_with_entropy(logits, full.updated(temperature=3.0), rng, {})[1] > 1.75


def _float64_stats(row: np.ndarray) -> tuple[float, float]:
    """Entropy (bits) and varentropy (bits^2) in float64 throughout."""
    z = row.astype(np.float64) - float(row.max())
    p = np.exp(z)
    p /= p.sum()
    logp = np.log(np.where(p > 0, p, 1.0))
    entropy = float(-(p * logp).sum())
    var = float((p * (logp + entropy) ** 2).sum())
    return entropy / math.log(2), var / math.log(2) ** 2


def test_a_row_gets_the_same_statistics_alone_in_a_batch_or_in_a_block_bit_for_bit():
    """One number per token: the statistics of a row never depend on the rows beside it."""
    rng = np.random.default_rng(7)
    rows = (rng.normal(0, 3, (9, 4099)) + rng.normal(0, 8, (9, 1))).astype(np.float32)
    following = [int(t) for t in rng.integers(0, 4099, 9)]
    ws = StatsWorkspace(4099, [3, 4000])
    batch = ws.rows(rows, following)
    block = ws.block(rows)
    block_sur = [ws.block_surprisal(i, t) for i, t in enumerate(following)]
    for i in range(9):
        alone = StatsWorkspace(4099, [3, 4000]).step(rows[i].copy(), following[i])
        assert alone == batch[i]  # every field, exactly
        assert replace(alone, surprisal_bits=block_sur[i]) == replace(block[i], surprisal_bits=block_sur[i])
        assert block_sur[i] == alone.surprisal_bits


@pytest.mark.parametrize("bulk", [-4.0, -6.0, -8.0])
def test_large_vocabulary_entropy_within_2e_5_bits_of_float64(bulk):
    """Gemma-3's 262,144 entries, shaped as real rows are (a few tokens on top, a long tail that
    still holds mass): the sums are pairwise, not float32 running dot products (those drift
    ~3e-5 bits here, 9e-4 on real Gemma-3 rows)."""
    rng = np.random.default_rng(int(-bulk))
    ws = StatsWorkspace(262144, [1])
    worst_h = worst_v = 0.0
    rows = rng.normal(bulk, 2.0, (4, 262144)).astype(np.float32)
    rows[:, :5] = 0.0
    for row, st in zip(rows, ws.rows(rows, [5] * 4), strict=True):  # a prompt's rows, as scored
        h, v = _float64_stats(row)
        worst_h = max(worst_h, abs(st.entropy_bits - h))
        worst_v = max(worst_v, abs(st.varentropy_bits2 - v) / max(v, 1.0))
    assert worst_h <= 2e-5
    assert worst_v <= 1e-4
