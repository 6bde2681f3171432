"""Token-level calibration: the pure bins/ECE, and `score --json` against numpy on llama.cpp's logits."""

from __future__ import annotations

import json

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
    roles = np.array([t["role"] for t in data["tokens"][1:]])
    for role, summary in data["roles"].items():
        mine = roles == role
        r_conf, r_hit = conf[mine], hit[mine]
        r_idx = np.minimum((r_conf * 10).astype(int), 9)
        r_ece = sum((r_idx == b).sum() / mine.sum() * abs(r_hit[r_idx == b].mean() - r_conf[r_idx == b].mean())
                    for b in range(10) if (r_idx == b).any())
        assert summary["ece"] == pytest.approx(r_ece, abs=2e-3), role
