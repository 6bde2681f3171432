"""Experiments decode cells that share a prompt together: same database as a serial run, each
cell still committed on its own, an interrupted batch resumed without gaps."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from harness.backends.fake import FakeBackend
from harness.errors import ExperimentError
from harness.experiment.cells import prompt_batches
from harness.experiment.db import connect, open_run, report_turns
from harness.experiment.run import run_cells
from harness.experiment.spec import DEFAULT_BATCH, expand, parse_experiment

EXP = """\
models: [{name: fake, templates: [chatml]}]
modes: [reply, past-eos]
eos: [stop, ban]
sampling:
  hot: {temperature: 1.5, top_k: 0, top_p: 1.0, min_p: 0.0}
  greedy: {temperature: 0, max_tokens: 5}
seeds: [1, 2, 3]
max_tokens: 9
conversations:
  - {name: a, messages: [{role: user, content: Hi}]}
  - {name: b, messages: [{role: user, content: Hi}, {role: assistant, content: Yo}, {role: user, content: Bye}]}
"""


def _run(tmp_path: Path, batch: int, db: str, stop_after: int | None = None, opened: list | None = None):
    exp = parse_experiment(EXP + f"batch: {batch}\n", where="b.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / db)
    run_id, _ = open_run(conn, exp, cells)
    seen: list[str] = []

    def open_backend(model, threads):
        backend = FakeBackend("Hello there!", confidence=2.0)
        if opened is not None:
            opened.append(backend)
        return backend

    outcome = run_cells(exp, conn, run_id, cells, on_cell=lambda c, t: seen.append(c.key),
                        should_stop=lambda: stop_after is not None and len(seen) >= stop_after,
                        open_backend=open_backend)
    conn.close()
    return cells, outcome, seen


def _turns(db: Path) -> dict[tuple, tuple]:
    """Each turn's text, stop and tokens with their statistics."""
    out = {}
    for t in report_turns(db):
        key = tuple(sorted(t["condition"].items()))
        tokens = [(k["id"], k["role"], [p for _, p in k["top"]], [n for n, _ in k["top"]],
                   k["entropy_bits"], k["surprisal_bits"], k.get("sampling_entropy_bits"))
                  for k in t["prompt_tokens"] + t["tokens"]]
        out[key] = (t["text"], t["stop_reason"],
                    [(i, r, names, [*probs, *(v for v in vals if v is not None)])
                     for i, r, probs, names, *vals in tokens])
    return out


def _assert_same_turns(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        (text, stop, toks), (text2, stop2, toks2) = a[key], b[key]
        assert (text, stop, toks) == (text2, stop2, toks2)  # every statistic, exactly


def test_batched_run_stores_what_a_serial_run_stores(tmp_path):
    opened: list = []
    cells, batched, _ = _run(tmp_path, 8, "batched.sqlite", opened=opened)
    _, serial, _ = _run(tmp_path, 1, "serial.sqlite")
    assert batched.ran == serial.ran == len(cells) and not batched.errors
    _assert_same_turns(_turns(tmp_path / "batched.sqlite"), _turns(tmp_path / "serial.sqlite"))
    sizes = opened[0]._sequences.step_sizes
    assert max(sizes) == 8  # 2 EOS policies x 2 sampling sets x 3 seeds of one prompt: 8, then 4


def test_batch_and_the_decode_path_are_part_of_the_digest_and_batch_is_checked(tmp_path):
    a = parse_experiment(EXP + "batch: 1\n", where="b.yaml", base=tmp_path)
    b = parse_experiment(EXP, where="b.yaml", base=tmp_path)
    assert b.batch == DEFAULT_BATCH and a.batch == 1
    assert a.digest() != b.digest()  # a resumed run never mixes batch sizes
    path = {"fake": {"flash_attn": "on", "type_v": "bf16"}}
    assert b.digest(path) != b.digest({"fake": {"flash_attn": "on", "type_v": "f16"}}) != b.digest()
    assert b.canonical(path)["batch"] == DEFAULT_BATCH and b.canonical(path)["decode"] == path
    with pytest.raises(ExperimentError, match="batch"):
        parse_experiment(EXP + "batch: 0\n", where="b.yaml", base=tmp_path)


def test_prompt_batches_group_cells_of_one_prompt_in_order(tmp_path):
    cells = expand(parse_experiment(EXP, where="b.yaml", base=tmp_path))
    groups = list(prompt_batches(cells, 5))
    assert [c for g in groups for c in g] == cells
    assert all(len(g) <= 5 for g in groups)
    for g in groups:
        assert len({(c.model, c.template, c.conversation, c.mode) for c in g}) == 1


def test_interrupt_inside_a_batch_drops_only_unfinished_cells_and_resume_fills_the_gap(tmp_path):
    cells, first, seen1 = _run(tmp_path, 8, "i.sqlite", stop_after=3)
    assert first.interrupted and first.ran == len(seen1) < len(cells)
    with sqlite3.connect(tmp_path / "i.sqlite") as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM cells GROUP BY status").fetchall())
        orphans = conn.execute("SELECT count(*) FROM turns t JOIN cells c ON c.id = t.cell_id "
                               "WHERE c.status != 'done'").fetchone()[0]
    assert statuses["done"] == len(seen1) and orphans == 0
    _, second, seen2 = _run(tmp_path, 8, "i.sqlite")
    assert not second.interrupted and set(seen1).isdisjoint(seen2)
    assert len(seen1) + len(seen2) == len(cells)
    _, serial, _ = _run(tmp_path, 1, "s.sqlite")
    _assert_same_turns(_turns(tmp_path / "i.sqlite"), _turns(tmp_path / "s.sqlite"))
