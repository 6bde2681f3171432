"""`summary --compare A B`: token-, turn- and position-matched differences with paired intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli.main import main
from harness.errors import CommandError
from harness.experiment.compare import compare_conditions, resolve_condition
from harness.experiment.summary import TokenStat
from harness.stats.intervals import difference_ci
from tests.support.runs import fake_run


def _stats(condition, conv, turn, values, role="assistant"):
    return [TokenStat(condition, turn, f"{condition}{turn}", "generated", role, (v, v, None, 0.0), conv)
            for v in values]


def test_token_turn_and_first_k_means_by_hand():
    toks = (_stats("A", "c1", 1, [1.0] * 2) + _stats("A", "c2", 2, [3.0] * 6)  # long turn of 3s
            + _stats("B", "c1", 3, [1.0] * 2) + _stats("B", "c2", 4, [1.0] * 2))
    row = compare_conditions(toks, "A", "B", first_k=1)["rows"][0]
    assert (row["scope"], row["role"], row["turns"], row["tokens"]) == ("generated", "assistant", [2, 2], [8, 4])
    # each conversation's own mean first, then the plain mean over conversations
    assert row["token_weighted"]["a"] == pytest.approx((2 / 2 + 18 / 6) / 2)
    assert row["turn_weighted"]["a"] == pytest.approx((1 + 3) / 2)
    assert row["first_k"]["a"] == pytest.approx((1 + 3) / 2)
    assert row["token_weighted"]["difference"] == pytest.approx(2.0 - 1.0)
    assert row["token_weighted"]["paired"] is True
    assert row["token_weighted"]["conversations"] == [2, 2] and row["token_weighted"]["interval"] == "t-conversations"
    # paired t on the differences (0, 2): mean 1, sd sqrt(2), t(0.975, 1) = 12.706
    lo, hi = row["token_weighted"]["ci95"]
    assert (hi - lo) / 2 == pytest.approx(12.7062 * 2 ** 0.5 / 2 ** 0.5, rel=1e-4)


def test_pairing_by_conversation_narrows_the_interval_of_a_shared_effect():
    """Each conversation moves both conditions alike; A is B + 0.2. Paired resampling sees the
    0.2 clearly, independent resampling drowns it in the conversation spread."""
    rng = np.random.default_rng(4)
    effects = rng.normal(0.0, 2.0, size=10)
    a = ([f"c{g}" for g in range(10) for _ in range(3)],
         [float(effects[g] + 0.2 + rng.normal(0, 0.05)) for g in range(10) for _ in range(3)], [1.0] * 30)
    b = ([f"c{g}" for g in range(10) for _ in range(3)],
         [float(effects[g] + rng.normal(0, 0.05)) for g in range(10) for _ in range(3)], [1.0] * 30)
    paired = difference_ci(a, b)
    assert paired.paired and paired.low > 0.1 and paired.high < 0.3
    unpaired = difference_ci(a, (["x" + g for g in b[0]], b[1], b[2]))
    assert not unpaired.paired and unpaired.low < 0.0 < unpaired.high


def test_resolve_condition_exact_or_unique_part():
    labels = ["m · t · reply · eos=stop · s", "m · t · impersonate · eos=stop · s"]
    assert resolve_condition(labels, "reply") == labels[0]
    assert resolve_condition(labels, labels[1]) == labels[1]
    with pytest.raises(CommandError):
        resolve_condition(labels, "eos=stop")
    with pytest.raises(CommandError):
        resolve_condition(labels, "nothing")


def test_summary_compare_from_the_cli(tmp_path, capsys):
    fake_run(tmp_path)
    db = str(tmp_path / "fake.sqlite")
    assert main(["summary", db, "--compare", "· reply", "past-eos", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["compare"]
    assert data["a"].endswith("reply · eos=stop · default") and "past-eos" in data["b"]
    roles = {(r["scope"], r["role"]) for r in data["rows"]}
    assert ("generated", "assistant") in roles and ("prompt", "user") in roles
    prompt_user = next(r for r in data["rows"] if r["scope"] == "prompt" and r["role"] == "user")
    assert prompt_user["token_weighted"]["difference"] == pytest.approx(0.0)  # the same prompts
    assert main(["summary", db, "--compare", "· reply", "impersonate"]) == 0
    assert "token-weighted A - B" in capsys.readouterr().out
