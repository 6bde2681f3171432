"""Token-level calibration: the pure bins/ECE, and `score --json` against numpy on llama.cpp's logits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.stats.calibration import bin_index, calibration
from tests.support.cli import harness, write_messages
from tests.support.logits import reference_rows


def test_perfectly_calibrated_and_overconfident_by_hand():
    # 10 tokens at confidence 0.75, 3 of 4 right in every block of 4 -> ECE 0
    conf = [0.75] * 8
    hit = [True, True, True, False] * 2
    cal = calibration(conf, hit)
    assert cal.ece == pytest.approx(0.0)
    assert [b.n for b in cal.bins] == [0] * 7 + [8, 0, 0]
    # always 0.95 sure, right half the time -> ECE 0.45
    assert calibration([0.95] * 4, [True, False, True, False]).ece == pytest.approx(0.45)
    # two bins: n-weighted
    cal = calibration([0.15, 0.15, 0.85, 0.85], [False, False, True, True])
    assert cal.ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.15)


@pytest.mark.parametrize(("p", "b"), [(0.0, 0), (0.0999, 0), (0.1, 1), (0.55, 5), (0.9999, 9), (1.0, 9)])
def test_equal_width_bins(p, b):
    assert int(bin_index(np.array([p]))[0]) == b


def test_empty_has_no_ece():
    cal = calibration([], [])
    assert cal.ece is None and cal.n == 0 and len(cal.bins) == 10


@pytest.mark.model
def test_score_json_calibration_matches_numpy_from_the_same_logits(tmp_path, smollm2_backend):
    conv = write_messages(tmp_path / "c.json", [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
        {"role": "assistant", "content": "The capital of France is Paris, a city on the Seine."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "The capital of Italy is Rome."}])
    data = json.loads(harness("score", "--model", "smollm2", "--messages", str(conv), "--json").stdout)
    ids = [t["id"] for t in data["tokens"]]
    rows = reference_rows(smollm2_backend, ids)
    p = np.exp(rows - rows.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    conf = p[:-1].max(axis=1)  # row i-1 predicts token i
    hit = p[:-1].argmax(axis=1) == np.array(ids[1:])
    idx = np.minimum((conf * 10).astype(int), 9)
    counts = np.bincount(idx, minlength=10)
    ece = sum(counts[b] / len(conf) * abs(hit[idx == b].mean() - conf[idx == b].mean())
              for b in range(10) if counts[b])
    cal = data["calibration"]
    assert [b["n"] for b in cal["bins"]] == counts.tolist()
    assert cal["n"] == len(ids) - 1
    assert cal["ece"] == pytest.approx(ece, abs=2e-3)
    # its floor and interval: a perfectly calibrated model at these confidences, simulated apart
    assert cal["brier"] == pytest.approx(float(((conf - hit) ** 2).mean()), abs=2e-3)
    assert cal["ece_null"] == pytest.approx(_independent_null(conf, 2000, 99), abs=0.01)
    assert cal["ece_ci95"][0] <= cal["ece"] <= cal["ece_ci95"][1]
    assert cal["confidence_minus_accuracy"] == pytest.approx(float(conf.mean() - hit.mean()), abs=2e-3)
    lo, hi = cal["confidence_minus_accuracy_ci95"]
    assert lo <= cal["confidence_minus_accuracy"] <= hi
    assert cal["resampled"]["unit"] == "token blocks" and cal["resampled"]["units"] == math.ceil(cal["n"] / 16)
    roles = np.array([t["role"] for t in data["tokens"][1:]])
    for role, summary in data["roles"].items():
        mine = roles == role
        r_conf, r_hit = conf[mine], hit[mine]
        r_idx = np.minimum((r_conf * 10).astype(int), 9)
        r_ece = sum((r_idx == b).sum() / mine.sum() * abs(r_hit[r_idx == b].mean() - r_conf[r_idx == b].mean())
                    for b in range(10) if (r_idx == b).any())
        assert summary["ece"] == pytest.approx(r_ece, abs=2e-3), role
        assert summary["ece_null"] == pytest.approx(_independent_null(r_conf, 2000, 7), abs=0.01), role
        if summary["ece_ci95"] is not None:
            assert summary["ece_ci95"][0] <= summary["ece"] <= summary["ece_ci95"][1], role


def _independent_null(conf: np.ndarray, replicates: int, seed: int) -> float:
    """A perfectly calibrated model's mean ECE at these confidences, written apart from the
    library: a loop over replicates, each token right with probability its confidence."""
    rng = np.random.default_rng(seed)
    bins = np.minimum((conf * 10).astype(int), 9)
    total = 0.0
    for _ in range(replicates):
        hit = rng.random(conf.size) < conf
        total += sum(abs(hit[bins == b].sum() - conf[bins == b].sum()) for b in range(10)) / conf.size
    return total / replicates


@pytest.mark.parametrize(("n", "a", "b", "seed"), [(20, 2.0, 2.0, 1), (69, 2.0, 1.5, 2), (159, 5.0, 1.5, 3),
                                                   (600, 1.0, 1.0, 4)])
def test_ece_null_matches_an_independent_simulation_and_shrinks_with_n(n, a, b, seed):
    rng = np.random.default_rng(seed)
    conf = rng.beta(a, b, size=n)
    cal = calibration(conf, rng.random(n) < conf)
    assert cal.ece_null == pytest.approx(_independent_null(conf, 2000, seed + 100), abs=0.01)
    assert cal.ece_null < cal.ece_null_p95
    assert calibration(conf, rng.random(n) < conf).ece_null == cal.ece_null  # a fixed seed


def test_brier_confidence_minus_accuracy_and_the_interval_by_hand():
    conf = [0.9, 0.9, 0.6, 0.6, 0.3, 0.3, 0.8, 0.8]
    hit = [True, False, True, True, False, False, True, True]
    cal = calibration(conf, hit, units=["a", "a", "b", "b", "c", "c", "d", "d"], unit="turns")
    assert cal.brier == pytest.approx(np.mean((np.array(conf) - np.array(hit, float)) ** 2))
    d = cal.to_dict()
    assert d["confidence_minus_accuracy"] == pytest.approx(np.mean(conf) - np.mean(hit))
    per_unit = [0.9 - 0.5, 0.6 - 1.0, 0.3 - 0.0, 0.8 - 1.0]  # two tokens each: the t on unit means
    half = 3.182446 * np.std(per_unit, ddof=1) / 2
    lo, hi = d["confidence_minus_accuracy_ci95"]
    assert (lo, hi) == (pytest.approx(np.mean(per_unit) - half, abs=1e-5), pytest.approx(np.mean(per_unit) + half, abs=1e-5))
    assert d["resampled"] == {"unit": "turns", "units": 4} and d["measures"] == "model"


@pytest.mark.parametrize("seed", range(12))
def test_ece_interval_brackets_the_ece(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    conf = rng.beta(2.0, 1.5, size=n)
    hit = rng.random(n) < np.clip(conf + rng.normal(0, 0.1), 0, 1)  # calibrated or a little off
    cal = calibration(conf, hit, units=rng.integers(0, int(rng.integers(3, 40)), size=n))
    lo, hi = cal.ece_ci95
    assert 0.0 <= lo <= cal.ece <= hi <= 1.0


def test_one_unit_has_no_intervals():
    cal = calibration([0.5, 0.7], [True, False], units=["a", "a"])
    assert cal.ece_ci95 is None and cal.gap_ci95 is None and cal.ece_null is not None
