"""Past-EOS turns classified: continuing the conversation or starting a new one."""

from __future__ import annotations

import pytest

from harness.experiment.past_eos import CLASSES, class_counts, classify
from tests.support.runs import fake_run, report_summary

A, U, S, T = "assistant", "user", "system", "template"


END, START, NL = (T, "<|im_end|>"), (T, "<|im_start|>"), (T, "\n")


def _open(role):
    return [START, (T, role), NL]


@pytest.mark.parametrize(("tokens", "expected"), [
    ([(A, "Hi"), (A, "!"), END, NL, *_open("user"), (U, "Thanks")], "continues"),
    ([(A, "Hi"), END, NL, *_open("system"), (S, "You are"), END, NL, *_open("user"), (U, "Write")],
     "new_conversation"),
    ([(A, "Hi"), END, NL, *_open("system"), END, NL, *_open("user"), (U, "Write")],
     "new_conversation"),  # an empty system turn: only scaffolding says so
    ([(A, "Hi"), END, NL, *_open("assistant"), (A, "Again")], "same_role_again"),
    ([(A, "Hi"), (A, " there")], "nothing"),  # the budget ran out inside its own turn
    ([(A, "Hi"), END], "nothing"),  # it closed its turn and stopped
    ([], "nothing"),
])
def test_classify_past_eos_turns(tokens, expected):
    assert classify(tokens) == expected


def test_class_counts_name_every_class():
    assert class_counts(map(classify, [[(A, "a"), END, (U, "b")], [(A, "a"), (S, "s"), (U, "u")], [(A, "a")]])) == {
        "continues": 1, "new_conversation": 1, "same_role_again": 0, "nothing": 1}
    assert set(class_counts([])) == set(CLASSES)


def test_summary_generated_rows_of_past_eos_conditions_carry_the_counts(tmp_path):
    _, run_id, _, _, _ = fake_run(tmp_path)
    rows = report_summary(tmp_path / "fake.sqlite", run_id)
    parent = "fake · chatml · past-eos · eos=continue · default"
    past = [r for r in rows if r["condition"] == parent and r["scope"] == "generated"]
    assert past and all(sum(r["past_eos"].values()) == 4 for r in past)  # 2 conversations x 2 seeds
    assert all("past_eos" not in r for r in rows if r["condition"] != parent)
    # each class with turns has rows of its own, no custom code: their turns add up to the condition's
    counts = past[0]["past_eos"]
    by_class = {r["condition"].removeprefix(parent + " · "): r for r in rows
                if r["condition"].startswith(parent + " · ") and r["role"] == past[0]["role"]}
    assert by_class and set(by_class) <= {c for c, n in counts.items() if n}
    assert sum(r["turns"] for r in by_class.values()) == past[0]["turns"]
    assert all(r["scope"] == "generated" and "diversity" in r for r in by_class.values())
    assert all(r["past_eos_class"] == name for name, r in by_class.items())
