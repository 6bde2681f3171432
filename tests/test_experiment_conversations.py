"""Conversations of an experiment from globs of messages files, cut at the last user turn or
prefixed with a greeting; and the claim experiments' size."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from harness.errors import ExperimentError
from harness.experiment.spec import expand, load_experiment, parse_experiment

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CLAIMS = ("calibration", "flattened-logits", "past-eos", "swap-roles", "swap-roles-greeting")


def _files(tmp_path: Path) -> None:
    (tmp_path / "convs").mkdir()
    (tmp_path / "convs" / "b.yaml").write_text(
        "- {role: system, content: Be brief.}\n- {role: user, content: Q1}\n- {role: assistant, content: A1}\n"
        "- {role: user, content: Q2}\n- {role: assistant, content: A2}\n", encoding="utf-8")
    (tmp_path / "convs" / "a.yaml").write_text(
        '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]', encoding="utf-8")
    (tmp_path / "convs" / "notes.txt").write_text("not matched", encoding="utf-8")


def _parse(tmp_path: Path, conversations: str, modes: str = "[reply, impersonate]"):
    text = f"models: [fake]\nmodes: {modes}\nconversations:\n{conversations}"
    return parse_experiment(text, where="exp.yaml", base=tmp_path)


def _messages(spec):
    return [(m.role, m.content) for m in spec.conversation]


def test_a_glob_names_each_file_by_its_stem_in_sorted_order(tmp_path):
    _files(tmp_path)
    exp = _parse(tmp_path, "  - {glob: convs/*.yaml}\n")
    assert [c.name for c in exp.conversations] == ["a", "b"]
    assert _messages(exp.conversations[0]) == [("user", "Hi"), ("assistant", "Hello")]


def test_end_with_user_cuts_after_the_last_user_turn_and_shares_names_across_disjoint_modes(tmp_path):
    _files(tmp_path)
    exp = _parse(tmp_path, "  - {glob: convs/*.yaml, end_with: user, modes: [reply]}\n"
                           "  - {glob: convs/*.yaml, modes: [impersonate]}\n")
    reply = {c.name: c for c in exp.conversations if c.modes == ("reply",)}
    assert _messages(reply["b"]) == [("system", "Be brief."), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]
    assert _messages(reply["a"]) == [("user", "Hi")]
    cells = expand(exp)
    assert sorted((c.conversation, c.mode.label) for c in cells) == [
        ("a", "impersonate"), ("a", "reply"), ("b", "impersonate"), ("b", "reply")]
    assert len({c.key for c in cells}) == len(cells)


def test_before_goes_after_the_system_prompt(tmp_path):
    _files(tmp_path)
    exp = _parse(tmp_path, "  - glob: convs/b.yaml\n    before: [{role: user, content: Hey}, "
                           "{role: assistant, content: Hi there}]\n")
    assert _messages(exp.conversations[0])[:4] == [("system", "Be brief."), ("user", "Hey"),
                                                   ("assistant", "Hi there"), ("user", "Q1")]


@pytest.mark.parametrize(("entry", "field"), [
    ("  - {glob: convs/*.json}\n", "conversations[0].glob"),  # matches nothing
    ("  - {glob: convs/*.yaml, name: x}\n", "conversations[0].name"),
    ("  - {glob: convs/*.yaml, end_with: assistant}\n", "conversations[0].end_with"),
    ("  - {glob: convs/*.yaml, file: convs/a.yaml}\n", "conversations[0]"),
    ("  - {glob: convs/*.yaml}\n  - {file: convs/a.yaml}\n", "conversations"),  # "a" twice in one mode
    ("  - {messages: [{role: assistant, content: x}], end_with: user}\n", "conversations[0].end_with"),
])
def test_bad_entries_name_the_field(tmp_path, entry, field):
    _files(tmp_path)
    with pytest.raises(ExperimentError) as err:
        _parse(tmp_path, entry)
    assert f"field '{field}'" in str(err.value)


@pytest.mark.parametrize("name", CLAIMS)
def test_each_claim_experiment_rests_on_at_least_30_conversations_and_pins_batch(name):
    exp = load_experiment(EXPERIMENTS / f"{name}.yaml")
    per: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for cell in expand(exp):
        per[(cell.model, cell.template, cell.mode.label)].add(cell.conversation)
    assert per and min(len(v) for v in per.values()) >= 30, {k: len(v) for k, v in per.items()}
    assert "\nbatch:" in (EXPERIMENTS / f"{name}.yaml").read_text(encoding="utf-8")


def test_the_written_conversations_vary():
    """Written for harness: some with a system prompt, some multi-turn, lengths that differ."""
    files = sorted((EXPERIMENTS / "conversations").rglob("*.yaml"))
    exp = parse_experiment("models: [fake]\nconversations:\n" + "".join(
        f"  - {{file: {f.relative_to(EXPERIMENTS)}, name: '{f.parent.name}/{f.stem}'}}\n" for f in files),
        where="x.yaml", base=EXPERIMENTS)
    convs = [c.conversation for c in exp.conversations]
    lengths = sorted(sum(len(m.content) for m in c) for c in convs)
    assert len(convs) >= 40
    assert sum(any(m.role == "system" for m in c) for c in convs) >= 8
    assert sum(sum(m.role == "user" for m in c) >= 2 for c in convs) >= 10
    assert lengths[0] < 50 and lengths[-1] > 600


def test_each_cell_runs_the_conversation_of_its_mode(tmp_path):
    """One name, two shapes: reply answers the last user turn, impersonate follows the last
    assistant turn; the stored prompts show which conversation each cell ran."""
    import sqlite3

    from harness.backends.fake import FakeBackend
    from harness.experiment.db import connect, open_run
    from harness.experiment.run import run_cells

    _files(tmp_path)
    exp = _parse(tmp_path, "  - {glob: convs/*.yaml, end_with: user, modes: [reply]}\n"
                           "  - {glob: convs/*.yaml, modes: [impersonate]}\n")
    cells = expand(exp)
    conn = connect(tmp_path / "x.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    run_cells(exp, conn, run_id, cells, open_backend=lambda model, threads: FakeBackend("Ok"))
    conn.close()
    with sqlite3.connect(tmp_path / "x.sqlite") as db:
        stored = {(conv, mode): prompt for conv, mode, prompt in db.execute(
            "SELECT c.conversation, c.mode, t.prompt FROM turns t JOIN cells c ON c.id = t.cell_id")}
    assert len(stored) == 4
    assert stored[("b", "reply")].endswith("Q2<|im_end|>\n<|im_start|>assistant\n")
    assert "A2" not in stored[("b", "reply")]
    assert stored[("b", "impersonate")].endswith("A2<|im_end|>\n<|im_start|>user\n")
