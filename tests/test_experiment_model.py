"""Entropy lab on the real SmolLM2: interrupted and resumed runs, SQLite vs JSON totals,
`harness run` under a real SIGINT, and `score --text` against llama.cpp's own logits."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from harness.experiment.db import connect, open_run, report_turns
from harness.experiment.run import run_cells
from harness.experiment.spec import expand, parse_experiment
from tests.support.logits import reference_rows
from tests.support.runs import report_summary

pytestmark = pytest.mark.model

EXPERIMENT = """\
name: lab-test
models: [{name: smollm2, templates: [gguf]}]
modes: [reply, impersonate, past-eos]
seeds: [1, 2]
max_tokens: 6
threads: 2
n_ctx: 512
sampling:
  t0.8: {temperature: 0.8}
conversations:
  - {name: hello, messages: [{role: user, content: Say hello in one short sentence.}]}
  - name: france
    messages:
      - {role: user, content: Hi!}
      - {role: assistant, content: 'Hello! How can I help?'}
      - {role: user, content: 'What is the capital of France?'}
"""


def _run(tmp_path, backend, stop_after=None):
    """Run (or resume) the experiment on the session's SmolLM2; collect each committed turn."""
    exp = parse_experiment(EXPERIMENT, where="lab-test.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "lab.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    turns: list[dict] = []

    class Shared:  # the session backend is reused, never closed by the runner
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def close(self):
            pass

    outcome = run_cells(exp, conn, run_id, cells, on_cell=lambda c, t: turns.append({"key": c.key, **t}),
                        should_stop=lambda: stop_after is not None and len(turns) >= stop_after,
                        open_backend=lambda model, threads: Shared(backend))
    conn.close()
    return cells, run_id, outcome, turns


def test_interrupt_then_resume_gives_every_cell_once_and_sqlite_matches_json(tmp_path, smollm2_backend):
    smollm2_backend.truncate(0)
    cells, run_id, first, turns1 = _run(tmp_path, smollm2_backend, stop_after=5)
    # the stop is seen after the 5th cell; cells of the same batch that finished with it are kept
    assert first.interrupted and 5 <= first.ran < len(cells)
    _, run2, second, turns2 = _run(tmp_path, smollm2_backend)
    assert run2 == run_id and not second.interrupted and second.already == first.ran
    keys = [t["key"] for t in turns1 + turns2]
    assert sorted(keys) == sorted(c.key for c in cells)  # no duplicate, none missing

    db = tmp_path / "lab.sqlite"
    with sqlite3.connect(db) as conn:
        stored = [k for (k,) in conn.execute(
            "SELECT c.key FROM cells c JOIN turns t ON t.cell_id = c.id WHERE c.run_id = ?", (run_id,))]
        status = dict(conn.execute("SELECT status, count(*) FROM cells GROUP BY status").fetchall())
        sql = {(scope, role): (n, ent, sur) for scope, role, n, ent, sur in conn.execute(
            "SELECT scope, role, count(*), total(entropy_bits), total(surprisal_bits) FROM tokens GROUP BY scope, role")}
    assert sorted(stored) == sorted(keys) and status == {"done": len(cells)}

    # totals per scope × role: the database against the JSON of every committed turn
    expect: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for turn in turns1 + turns2:
        for scope, tokens in (("prompt", turn["prompt_tokens"]), ("generated", turn["tokens"])):
            for t in tokens:
                acc = expect[(scope, t["role"])]
                acc[0] += 1
                acc[1] += t["entropy_bits"] or 0.0
                acc[2] += t["surprisal_bits"] or 0.0
    assert set(sql) == set(expect)
    for key, (n, ent, sur) in sql.items():
        assert n == expect[key][0]
        assert ent == pytest.approx(expect[key][1], rel=1e-12) and sur == pytest.approx(expect[key][2], rel=1e-12)
    assert ("generated", "user") in sql and ("generated", "assistant") in sql

    # the report loader gives back exactly the token dicts the JSON had
    views = {v["label"] + " " + v["condition"]["conversation"]: v for v in report_turns(db)}
    assert len(views) == len(cells)
    by_key = {t["key"]: t for t in turns1 + turns2}
    for cell in cells:
        view = views[_label(cell) + " " + cell.conversation]
        turn = by_key[cell.key]
        assert view["tokens"] == turn["tokens"] and view["prompt_tokens"] == turn["prompt_tokens"]
        assert view["text"] == turn["text"] and view["stop_reason"] == turn["stop_reason"]
    rows = report_summary(db)
    gen_tokens = sum(r["tokens"] for r in rows if r["scope"] == "generated" and "past_eos_class" not in r)
    assert gen_tokens == sum(v[0] for k, v in expect.items() if k[0] == "generated")


def _label(cell):
    from harness.experiment.spec import condition_label

    return condition_label(cell.condition())


def test_run_command_stops_on_sigint_and_resumes(tmp_path):
    exp = tmp_path / "lab.yaml"
    exp.write_text(EXPERIMENT.replace("max_tokens: 6", "max_tokens: 24"))
    db = tmp_path / "lab.sqlite"
    cmd = [sys.executable, "-m", "harness", "run", str(exp), "--db", str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if db.exists():
            with sqlite3.connect(db) as conn:
                done = conn.execute("SELECT count(*) FROM cells WHERE status = 'done'").fetchone()[0]
            if done >= 2:
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("harness: interrupted after ") and f"resume with: harness run {exp} --db {db}" in last
    with sqlite3.connect(db) as conn:
        done_before = conn.execute("SELECT count(*) FROM cells WHERE status = 'done'").fetchone()[0]
        orphans = conn.execute("SELECT count(*) FROM turns t JOIN cells c ON c.id = t.cell_id "
                               "WHERE c.status != 'done'").fetchone()[0]
    assert 2 <= done_before < 12 and orphans == 0
    again = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["run"]["cells"] == {"done": 12} and data["outcome"]["already_finished"] == done_before
    assert data["outcome"]["ran"] == 12 - done_before and "cells/min" in again.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT cell_id) FROM turns").fetchone() == (12, 12)
    summary = subprocess.run([sys.executable, "-m", "harness", "summary", str(db)], capture_output=True,
                             text=True, env=os.environ.copy(), timeout=120)
    assert summary.returncode == 0 and "smollm2 · gguf · impersonate · eos=stop · t0.8" in summary.stdout


def test_score_text_perplexity_matches_llama_cpp_logits(tmp_path, smollm2_backend):
    import llama_cpp

    from harness.generation.text_score import perplexity, score_text

    text = ("The quick brown fox jumps over the lazy dog. Paris is the capital of France, and "
            "Berlin is the capital of Germany. <|im_end|> stays plain text here.")
    smollm2_backend.truncate(0)
    tokens = score_text(smollm2_backend, text)
    ids = [t.id for t in tokens]
    assert all(t.role == "text" for t in tokens)  # SmolLM2 adds no BOS; control strings stay text
    assert not any(smollm2_backend.is_special(i) for i in ids)
    ours = perplexity(tokens)

    llm = llama_cpp.Llama(smollm2_backend.info.path, vocab_only=True, verbose=False)
    try:
        assert llm.tokenize(text.encode(), add_bos=True, special=False) == ids  # what llama.cpp's tool feeds
    finally:
        llm.close()
    logits = reference_rows(smollm2_backend, ids)
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -log_probs[np.arange(len(ids) - 1), ids[1:]]
    assert ours["scored_tokens"] == len(ids) - 1
    assert ours["mean_nll_nats"] == pytest.approx(float(nll.mean()), rel=1e-5)
    assert ours["perplexity"] == pytest.approx(math.exp(float(nll.mean())), rel=1e-5)


def test_score_text_adds_bos_where_the_model_asks_for_it():
    from harness.generation.text_score import encode_text
    from harness.models.registry import open_backend

    backend = open_backend("gemma3-270m", vocab_only=True)
    try:
        records = encode_text(backend, "Hello world")
        assert records[0].id == backend.info.bos_id and records[0].role == "template"
        assert [r.role for r in records[1:]] == ["text"] * (len(records) - 1)
    finally:
        backend.close()


def test_score_text_cli(tmp_path):
    path = Path(tmp_path / "t.txt")
    path.write_text("One two three four five six seven.")
    proc = subprocess.run([sys.executable, "-m", "harness", "score", "--text", str(path), "--json"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["scored_tokens"] == len(data["tokens"]) - 1 and "text" in data["roles"]
    assert data["perplexity"] == pytest.approx(2 ** data["roles"]["text"]["mean_surprisal_bits"], rel=1e-4)
