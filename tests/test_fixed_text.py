"""Fixed-text cells: `score` and `{score: swap_roles}` modes, teacher-forced, compared role-swapped."""

from __future__ import annotations

import json

import pytest

from harness.backends.fake import FakeBackend
from harness.cli.main import main
from harness.errors import ExperimentError
from harness.experiment.db import connect, load_turns, open_run
from harness.experiment.fixed_text import swap_roles
from harness.experiment.run import run_cells
from harness.experiment.spec import expand, parse_experiment
from harness.prompt.conversation import Conversation

SPEC = """\
models: [{name: fake, templates: [chatml]}]
modes: [reply, score, {score: swap_roles}]
sampling: {a: {temperature: 0.7}, b: {temperature: 1.0}}
seeds: [1, 2, 3]
max_tokens: 4
conversations:
  - {name: one, messages: [{role: user, content: "The same words either way."}]}
  - {name: two, messages: [{role: system, content: S}, {role: user, content: "Hi there"}, {role: assistant, content: "Hello you"}]}
"""


def test_swap_roles_exchanges_user_and_assistant_only():
    conv = Conversation.of(("system", "S"), ("user", "q"), ("assistant", "a"))
    assert [(m.role, m.content) for m in swap_roles(conv)] == [("system", "S"), ("assistant", "q"), ("user", "a")]


def test_score_modes_make_one_cell_per_conversation(tmp_path):
    cells = expand(parse_experiment(SPEC, where="x.yaml", base=tmp_path))
    scored = [c for c in cells if c.mode.kind == "score"]
    assert len(scored) == 2 * 2  # two score modes x two conversations; no sampling sets, no seeds
    assert {c.mode.label for c in scored} == {"score", "score:swap_roles"}
    assert all(c.sampling == "a" and c.seed == 1 and c.eos == "stop" for c in scored)
    assert len(cells) - len(scored) == 2 * 2 * 3  # reply: sets x seeds x conversations


def test_a_bad_score_option_is_a_schema_error(tmp_path):
    with pytest.raises(ExperimentError, match="modes\\[0\\]"):
        parse_experiment(SPEC.replace("modes: [reply, score, {score: swap_roles}]", "modes: [{score: upside}]"),
                         where="x.yaml", base=tmp_path)


def test_fixed_text_cells_store_the_scored_conversation_and_compare_swapped(tmp_path, capsys):
    exp = parse_experiment(SPEC, where="x.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "f.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    outcome = run_cells(exp, conn, run_id, cells, open_backend=lambda m, t: FakeBackend("Hello!"))
    assert outcome.errors == 0
    turns = [t for t in load_turns(conn, run_id) if t["condition"]["mode"].startswith("score")]
    conn.close()
    assert len(turns) == 4
    for turn in turns:
        assert turn["stop_reason"] == "scored" and turn["tokens"] == [] and turn["text"] == ""
        assert turn["prompt_tokens"][0]["entropy_bits"] is None
        assert all(t["entropy_bits"] is not None for t in turn["prompt_tokens"][1:])
    plain = next(t for t in turns if t["condition"] == {**t["condition"], "mode": "score", "conversation": "one"})
    swapped = next(t for t in turns if t["condition"]["mode"] == "score:swap_roles"
                   and t["condition"]["conversation"] == "one")
    assert {t["role"] for t in plain["prompt_tokens"]} >= {"user"}
    assert "user" not in {t["role"] for t in swapped["prompt_tokens"]}
    assert main(["summary", str(tmp_path / "f.sqlite"), "--compare", "· score ·", "swap_roles",
                 "--swapped", "--metric", "surprisal_bits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["compare"]
    assert data["swapped"] is True
    rows = {(r["scope"], r["role"]): r for r in data["rows"]}
    # A's user text (score) is B's assistant text (swap_roles): paired over both conversations
    assert rows[("prompt", "user")]["turns"] == [2, 2]
    assert rows[("prompt", "user")]["token_weighted"]["paired"] is True
    assert rows[("prompt", "assistant")]["turns"] == [1, 1]
