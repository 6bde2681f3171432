"""Multiple-choice items: the schema, the letters' probabilities, accuracy and calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli.main import main
from harness.errors import ExperimentError
from harness.experiment.choice import choice_summary, letter_probs
from harness.experiment.spec import expand, parse_experiment

ITEMS = """\
models: [{name: smollm2, templates: [gguf]}]
n_ctx: 512
items:
  - {name: capital, question: "What is the capital of France?", options: [Berlin, Paris, Madrid, Rome], answer: B}
  - {name: legs, question: "How many legs does a spider have?", options: ["Six", "Eight"], answer: 1}
  - {name: ice, question: "At what temperature in Celsius does water freeze?", options: ["0", "10", "-10"], answer: A}
"""


def test_letter_probabilities_sum_spellings_and_renormalise():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.05, 0.35]))
    probs, mass = letter_probs(logits, [[0, 1], [2]])  # letter A spelled by ids 0 and 1, B by 2
    assert mass == pytest.approx(0.6)
    assert probs.tolist() == pytest.approx([0.5, 0.5])


def test_choice_summary_accuracy_and_ece():
    rows = [("c", 0.9, True, 0.8), ("c", 0.9, False, 0.6), ("c", 0.55, True, 0.9), ("d", 0.3, False, 0.1)]
    c, d = choice_summary(rows)
    assert c["items"] == 3 and c["accuracy"] == pytest.approx(2 / 3)
    assert c["calibration"]["ece"] == pytest.approx(2 / 3 * abs(0.5 - 0.9) + 1 / 3 * abs(1.0 - 0.55))
    assert c["mean_letter_mass"] == pytest.approx((0.8 + 0.6 + 0.9) / 3)
    assert d["accuracy"] == 0.0


def test_items_become_choice_cells_one_per_model_and_item(tmp_path):
    exp = parse_experiment(ITEMS, where="x.yaml", base=tmp_path)
    cells = expand(exp)
    assert [c.mode.label for c in cells] == ["choice"] * 3 and [c.conversation for c in cells] == ["capital", "legs", "ice"]
    assert "B. Paris" in exp.conversations[0].conversation.last.content


@pytest.mark.parametrize(("bad", "field"), [
    ('answer: B}', "answer: E}"), ('options: ["Six", "Eight"]', 'options: ["Six"]'),
])
def test_bad_items_name_the_field(tmp_path, bad, field):
    with pytest.raises(ExperimentError, match="items\\["):
        parse_experiment(ITEMS.replace(bad, field, 1), where="x.yaml", base=tmp_path)


@pytest.mark.model
def test_choice_cells_on_smollm2_store_answers_and_summarise(tmp_path, capsys):
    (tmp_path / "items.yaml").write_text(ITEMS, encoding="utf-8")
    db = str(tmp_path / "c.sqlite")
    assert main(["run", str(tmp_path / "items.yaml"), "--db", db, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"]["ran"] == 3 and out["outcome"]["errors"] == 0
    assert main(["summary", db, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (choice,) = data["choices"]
    assert choice["condition"] == "smollm2 · gguf · choice · eos=stop · default" and choice["items"] == 3
    assert 0.0 <= choice["accuracy"] <= 1.0 and 0.0 < choice["mean_letter_mass"] <= 1.0
    assert sum(b["n"] for b in choice["calibration"]["bins"]) == 3
    assert main(["summary", db]) == 0
    assert "multiple choice: smollm2 · gguf · choice" in capsys.readouterr().out
