"""`score --reference R`: KL, ranks and bits per byte against a second model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.stats.model_comparison import bits_on_bytes, byte_spans, compare_row, role_runs
from tests.support.cli import harness, write_messages

CONV = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "Thanks! And Italy?"},
        {"role": "assistant", "content": "Rome, of course."}]


def test_kl_of_identical_and_known_distributions():
    logits = np.array([2.0, 1.0, 0.0, -1.0])
    same = compare_row(logits, logits + 7.0, 1)  # adding a constant changes nothing
    assert same.kl_bits == pytest.approx(0.0, abs=1e-12)
    assert same.rank == 2 and same.top1_rank == 1
    # model certain of token 0 (p ~ 1), reference uniform over 4: KL = log2 4 = 2 bits
    step = compare_row(np.array([100.0, 0.0, 0.0, 0.0]), np.zeros(4), 0)
    assert step.kl_bits == pytest.approx(2.0, abs=1e-9)
    assert step.ref_surprisal_bits == pytest.approx(2.0)
    assert step.rank == 1 and step.top1_rank == 1  # ties share the better rank


def test_bytes_alignment_skips_an_added_bos_and_spreads_bits():
    text = "héllo"
    spans = byte_spans([b"<bos>", b"h\xc3\xa9", b"llo"], text.encode())
    assert spans == [(0, 0), (0, 3), (3, 3)]
    bits = bits_on_bytes(spans, [None, 3.0, 6.0], 6)
    assert bits.tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert byte_spans([b"h", b"x"], b"hi") is None
    first_unscored = bits_on_bytes(byte_spans([b"h\xc3\xa9", b"llo"], text.encode()), [None, 6.0], 6)
    assert math.isnan(first_unscored[0]) and first_unscored[3:].tolist() == [2.0] * 3


def test_role_runs_are_turns():
    assert role_runs(["u", "u", "t", "a", "a", "t"]) == [("u", 0, 2), ("t", 2, 3), ("a", 3, 5), ("t", 5, 6)]


@pytest.mark.model
def test_same_model_twice_gives_kl_zero_and_rank_one(tmp_path):
    conv = write_messages(tmp_path / "c.json", CONV)
    data = json.loads(harness("score", "--model", "smollm2", "--reference", "smollm2",
                              "--messages", str(conv), "--json").stdout)
    ref = data["reference"]
    assert ref["same_vocabulary"] is True
    scored = data["tokens"][1:]
    assert scored and all(t["kl_bits"] == pytest.approx(0.0, abs=1e-6) for t in scored)
    assert all(t["ref_rank_of_model_top1"] == 1 for t in scored)
    assert all(t["ref_surprisal_bits"] == pytest.approx(t["surprisal_bits"], abs=1e-3) for t in scored)
    for role in ("system", "user", "assistant", "template"):
        entry = ref["roles"][role]
        assert entry["mean_kl_bits"] == pytest.approx(0.0, abs=1e-6)
        assert entry["top1_agreement"] == 1.0
        assert entry["difference_bits_per_byte"] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.model
@pytest.mark.gemma
def test_smollm2_against_gemma_gives_bits_per_byte_per_role(tmp_path):
    conv = write_messages(tmp_path / "c.json", CONV)
    data = json.loads(harness("score", "--model", "smollm2", "--reference", "gemma3-270m",
                              "--messages", str(conv), "--json").stdout)
    ref = data["reference"]
    assert ref["same_vocabulary"] is False and ref["model"] == "gemma3-270m"
    assert "kl_bits" not in data["tokens"][1]
    assert set(ref["roles"]) == {"system", "user", "assistant", "template"}
    for entry in ref["roles"].values():
        assert entry["bytes"] > 0
        assert 0 < entry["model_bits_per_byte"] < 8 and 0 < entry["reference_bits_per_byte"] < 8
        lo, hi = entry["difference_ci95"]
        assert lo <= entry["difference_bits_per_byte"] <= hi
    # SmolLM2 adds no BOS: the bytes both scored are all but its first token's, so its bits per
    # byte times bytes add up to its own surprisal of every token after the first
    total = sum(e["model_bits_per_byte"] * e["bytes"] for e in ref["roles"].values())
    assert total == pytest.approx(sum(t["surprisal_bits"] for t in data["tokens"][1:]), rel=1e-4)
    assert sum(e["bytes"] for e in ref["roles"].values()) == (
        len(data["prompt"].encode()) - len(data["tokens"][0]["piece"].encode()))


@pytest.mark.model
@pytest.mark.gemma
def test_bits_per_byte_swap_with_the_models_on_raw_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. It was a bright cold day in April.",
                    encoding="utf-8")
    a = json.loads(harness("score", "--model", "smollm2", "--reference", "gemma3-270m",
                           "--text", str(text), "--json").stdout)["reference"]["roles"]["text"]
    b = json.loads(harness("score", "--model", "gemma3-270m", "--reference", "smollm2",
                           "--text", str(text), "--json").stdout)["reference"]["roles"]["text"]
    assert a["bytes"] == b["bytes"]
    assert a["model_bits_per_byte"] == pytest.approx(b["reference_bits_per_byte"], abs=1e-4)
    assert a["reference_bits_per_byte"] == pytest.approx(b["model_bits_per_byte"], abs=1e-4)
