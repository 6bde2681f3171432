"""Claims read from experiment databases: verdict rules, the claims file's schema, and a whole run
on the fake backend with three conversations (the interval Student-t on the conversation means,
the row saying it rests on three)."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest

from harness.backends.fake import FakeBackend
from harness.cli.main import main
from harness.errors import HarnessError
from harness.experiment.claims import (
    calibration_verdict,
    compare_verdict,
    evaluate,
    load_claims,
    results_markdown,
)
from harness.experiment.db import connect, open_run, report_turns, resolve_run, summary
from harness.experiment.run import run_cells
from harness.experiment.spec import expand, parse_experiment
from harness.experiment.summary_table import format_markdown, format_table


def _diff(lo, hi, conversations=(30, 30), needed=None, difference=-0.2):
    return {"ci95": [lo, hi], "conversations": list(conversations), "conversations_needed": needed,
            "difference": difference}


@pytest.mark.parametrize(("diff", "expect", "verdict"), [
    (_diff(-0.5, -0.1), "a<b", "supported (A < B)"),
    (_diff(-0.5, -0.1), "a>b", "contradicted (A < B)"),
    (_diff(0.1, 0.5), "differ", "supported (A > B)"),
    (_diff(-0.5, 0.1, needed=120), "a<b", "not shown (the interval holds 0; ~120 conversations would detect -0.200)"),
    (_diff(-0.5, -0.1, conversations=(3, 3)), "a<b", "3 conversations, too few to decide: supported (A < B)"),
    (_diff(-0.5, 0.1, conversations=(12, 9)), "a<b", "9 conversations, too few to decide: not shown (the interval holds 0)"),
])
def test_compare_verdicts(diff, expect, verdict):
    assert compare_verdict(diff, expect) == verdict


@pytest.mark.parametrize(("cal", "conversations", "verdict"), [
    ({"ece": 0.10, "ece_null_p95": 0.12, "confidence_minus_accuracy_ci95": [-0.01, 0.13]}, 43,
     "indistinguishable from perfect calibration"),
    ({"ece": 0.15, "ece_null_p95": 0.12, "confidence_minus_accuracy_ci95": [0.02, 0.13]}, 43,
     "miscalibrated beyond the noise floor; over-confident"),
    ({"ece": 0.15, "ece_null_p95": 0.12, "confidence_minus_accuracy_ci95": [-0.2, -0.05]}, 5,
     "5 conversations, too few to decide: miscalibrated beyond the noise floor; under-confident"),
])
def test_calibration_verdicts(cal, conversations, verdict):
    assert calibration_verdict(cal, conversations) == verdict


@pytest.mark.parametrize(("text", "needle"), [
    ("claims: [{claim: x, experiment: e.yaml, kind: compare, a: A, scope: prompt, role: user}]", "needs 'b'"),
    ("claims: [{claim: x, experiment: e.yaml, kind: guess, a: A, scope: prompt, role: user}]", "claims[0].kind"),
    ("claims: [{claim: x, experiment: e.yaml, kind: calibration, a: A, scope: prompt, role: user, colour: red}]",
     "claims[0].colour"),
    ("claims: [{claim: x, experiment: e.yaml, kind: compare, a: A, b: B, scope: p, role: u, expect: bigger}]",
     "claims[0].expect"),
    ("claims: []", "no claims"),
])
def test_the_claims_file_is_strict(tmp_path, text, needle):
    path = tmp_path / "claims.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HarnessError) as err:
        load_claims(path)
    assert needle in str(err.value)


def test_the_repository_claims_file_loads():
    from pathlib import Path

    claims = load_claims(Path(__file__).resolve().parents[1] / "experiments" / "claims.yaml")
    assert {c.stem for c in claims} == {"swap-roles", "swap-roles-greeting", "calibration", "past-eos",
                                         "flattened-logits"}


THREE = """\
name: three
models: [{name: fake, templates: [chatml]}]
modes: [reply, impersonate, score]
seeds: [1, 2, 3]
max_tokens: 5
batch: 4
conversations:
  - {name: a, messages: [{role: user, content: Hi}, {role: assistant, content: Hello there}]}
  - {name: b, messages: [{role: user, content: "What now?"}, {role: assistant, content: Anything}]}
  - {name: c, messages: [{role: user, content: Tell me more please}, {role: assistant, content: Sure}]}
"""


@pytest.fixture
def three_db(tmp_path):
    exp = parse_experiment(THREE, where="three.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "three.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    scripts = iter(["Yes indeed", "No", "Maybe so then", "Sure thing", "Ok", "Hmm well"] * 20)
    run_cells(exp, conn, run_id, cells, open_backend=lambda model, threads: FakeBackend(next(scripts)))
    yield tmp_path / "three.sqlite", conn, run_id
    conn.close()


def test_three_conversations_get_student_t_on_their_means_and_the_row_says_so(three_db, capsys):
    db, conn, run_id = three_db
    rows = [r.to_dict() for r in summary(conn, run_id)]
    row = next(r for r in rows if r["condition"].startswith("fake · chatml · reply") and r["scope"] == "prompt"
               and r["role"] == "user")
    # Student-t on the three conversation means, computed here from the stored tokens (each
    # conversation's prompt once: its seeds share it)
    per: dict[str, list[float]] = defaultdict(list)
    for turn in report_turns(db, run_id):
        if turn["condition"]["mode"] == "reply" and turn["condition"]["seed"] == 1:
            per[turn["condition"]["conversation"]] += [t["entropy_bits"] for t in turn["prompt_tokens"]
                                                       if t["role"] == "user" and t["entropy_bits"] is not None]
    means = np.array([np.mean(v) for v in per.values()])
    half = 4.302653 * means.std(ddof=1) / math.sqrt(3)
    assert len(means) == 3 and half > 0.5
    assert (row["conversations"], row["interval"], row["df"]) == (3, "t-conversations", 2.0)
    assert row["mean_entropy_bits"] == pytest.approx(means.mean(), rel=1e-5)
    assert row["ci95"][1] - row["ci95"][0] >= 2 * half * (1 - 1e-5)  # at least as wide (here: equal)
    assert row["ci95"] == [pytest.approx(means.mean() - half, rel=1e-4), pytest.approx(means.mean() + half, rel=1e-4)]
    # the table marks it, in text and Markdown
    text_rows = summary(conn, run_id)
    assert " 3* " in format_table(text_rows).splitlines()[2]
    assert "| 3* |" in format_markdown(text_rows)
    assert main(["summary", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all("conversations" in r and "interval" in r for r in out["summary"])


def test_compare_prints_the_power_line(three_db, capsys):
    db, _, _ = three_db
    assert main(["summary", str(db), "--compare", "· reply", "· impersonate", "--swapped"]) == 0
    out = capsys.readouterr().out
    assert "paired Student-t" in out and "3/3*" in out
    assert "power generated assistant: per-conversation sd" in out and "this run has 3/3" in out
    assert main(["summary", str(db), "--compare", "· reply", "· impersonate", "--swapped", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["compare"]["rows"][0]["token_weighted"]
    assert row["conversations"] == [3, 3] and row["interval"] == "t-conversations" and row["paired"]


def test_claims_from_the_database_to_markdown(three_db, tmp_path):
    _, conn, _ = three_db
    (tmp_path / "claims.yaml").write_text(
        "claims:\n"
        "  - {claim: replies sharper, experiment: three.yaml, kind: compare, a: '· reply', b: '· impersonate',"
        " swapped: true, scope: generated, role: assistant, expect: a<b}\n"
        "  - {claim: calibrated, experiment: three.yaml, kind: calibration, a: '· score', scope: prompt,"
        " role: assistant}\n", encoding="utf-8")
    claims = load_claims(tmp_path / "claims.yaml")
    run_id = resolve_run(conn, None, "three.sqlite")
    results = [evaluate(c, conn, run_id) for c in claims]
    assert results[0].conversations == "3" and results[0].method == "t-conversations"
    assert results[0].verdict.startswith("3 conversations, too few to decide: ")
    assert results[1].conversations == "3" and "ECE" in results[1].measurement
    page = results_markdown(results, header="# R", tables={"three.yaml": "| table |"})
    assert "[`three.yaml`](three.yaml)" in page and "3 conversations, too few to decide" in page
    assert "### `three.yaml`" in page
