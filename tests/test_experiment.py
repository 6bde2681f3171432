"""Entropy lab without a model: the experiment schema, bootstrap intervals, summaries, progress,
and the runner's resume logic on the fake backend."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.backends.fake import FakeBackend
from harness.cli.main import main
from harness.errors import ExperimentError
from harness.experiment.db import commit_cell, connect, open_run, report_turns
from harness.experiment.progress import Progress, progress_line
from harness.experiment.run import run_cells
from harness.experiment.spec import PAST_EOS, expand, load_experiment, parse_experiment
from harness.experiment.summary import TokenStat, summarize_tokens
from harness.stats.bootstrap import cluster_mean_ci
from tests.support.runs import FAKE, fake_run, report_summary

GOOD = """\
name: small
models:
  - name: smollm2
    templates: [gguf, chatml]
  - {name: gemma3-270m, templates: [chatml]}
modes: [reply, impersonate, past-eos, {prefill: "Sure,"}]
eos: [stop, ban]
sampling:
  t0.8: {temperature: 0.8}
  greedy: {temperature: 0, max_tokens: 8}
seeds: [1, 2]
max_tokens: 16
conversations:
  - name: hello
    messages: [{role: user, content: Hi}]
  - file: conv.yaml
"""


@pytest.fixture
def exp_dir(tmp_path: Path) -> Path:
    (tmp_path / "conv.yaml").write_text("- {role: user, content: 'What is 2+2?'}\n")
    (tmp_path / "exp.yaml").write_text(GOOD)
    return tmp_path


def mean_ci(values, **kwargs):
    """A plain mean's interval: every value its own cluster."""
    v = np.asarray(values, dtype=float)
    return cluster_mean_ci(v, np.ones_like(v), **kwargs)


def test_expand_orders_by_model_template_conversation_and_fixes_past_eos(exp_dir):
    exp = load_experiment(exp_dir / "exp.yaml")
    cells = expand(exp)
    # per model×template×conversation: 3 modes × 2 eos + past-eos × 1, each × 2 sampling × 2 seeds
    assert len(cells) == 3 * 2 * (3 * 2 + 1) * 2 * 2
    assert len({c.key for c in cells}) == len(cells)
    order = [(c.model, c.template, c.conversation) for c in cells]
    assert order == sorted(order, key=lambda k: ([m.label for m in exp.models].index(k[0]),
                                                 ["gguf", "chatml"].index(k[1]), ["hello", "conv"].index(k[2])))
    past = [c for c in cells if c.mode.kind == PAST_EOS]
    assert past and {c.eos for c in past} == {"continue"} and {c.params.eos for c in past} == {"continue"}
    greedy = next(c for c in cells if c.sampling == "greedy")
    assert greedy.params.max_tokens == 8 and greedy.params.temperature == 0
    assert next(c for c in cells if c.sampling == "t0.8").params.max_tokens == 16
    assert {c.seed for c in cells} == {1, 2} and all(c.params.seed == c.seed for c in cells)


def test_a_conversation_can_be_limited_to_some_modes(tmp_path):
    text = ("models: [smollm2]\nmodes: [reply, impersonate]\nconversations:\n"
            "  - {name: q, modes: [reply], messages: [{role: user, content: Hi}]}\n"
            "  - {name: qa, modes: [impersonate], messages: [{role: user, content: Hi}, {role: assistant, content: Yo}]}\n")
    cells = expand(parse_experiment(text, where="x.yaml", base=tmp_path))
    assert [(c.conversation, c.mode.label) for c in cells] == [("q", "reply"), ("qa", "impersonate")]
    with pytest.raises(ExperimentError, match=r"x\.yaml:4: field 'conversations\[0\]\.modes\[0\]'"):
        parse_experiment(text.replace("modes: [reply]", "modes: [prefill]"), where="x.yaml", base=tmp_path)


def test_digest_follows_content_not_name(exp_dir):
    a = load_experiment(exp_dir / "exp.yaml")
    renamed = parse_experiment(GOOD.replace("name: small", "name: other"), where="x.yaml", base=exp_dir)
    assert a.digest() == renamed.digest()
    (exp_dir / "conv.yaml").write_text("- {role: user, content: 'What is 3+3?'}\n")
    assert load_experiment(exp_dir / "exp.yaml").digest() != a.digest()


BAD = [
    ("colour: red\n", 1, "colour"),
    ("models: [smollm2]\nconversations: [{messages: [{role: user, content: hi}]}]\nsampling:\n  a:\n    topk: 3\n",
     5, "sampling.a.topk"),
    ("models: [smollm2]\nconversations: [{messages: [{role: user, content: hi}]}]\neos: [stop, never]\n",
     3, "eos[1]"),
    ("models: [smollm2]\nconversations:\n  - messages: [{role: user, content: hi}]\nmodes:\n  - reply\n  - shout\n",
     6, "modes[1]"),
    ("models: [smollm2]\nconversations: [{messages: [{role: user, content: hi}]}]\nseeds: [1, two]\n",
     3, "seeds[1]"),
    ("models:\n  - name: smollm2\n    n_ctx: big\nconversations: [{messages: [{role: user, content: hi}]}]\n",
     3, "models[0].n_ctx"),
    ("models: [smollm2]\nconversations:\n  - name: a\n    file: nope.yaml\n", 4, "conversations[0].file"),
    ("models: [smollm2]\nconversations: [{messages: [{role: user, content: hi}]}]\nsampling:\n  a: {top_p: 2}\n",
     4, "sampling.a.top_p"),
    ("models: [smollm2]\nconversations: [{messages: [{role: user, content: hi}]}]\nmax_tokens: 0\n",
     3, "max_tokens"),
]


@pytest.mark.parametrize(("text", "line", "field"), BAD)
def test_bad_experiment_names_file_line_and_field(tmp_path, text, line, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: field '{field}'") and "\n" not in message


def test_bad_experiment_is_one_line_from_the_cli(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [smollm2]\nconversations: [{messages: [{role: user, content: hi}]}]\n"
                    "sampling:\n  hot: {temprature: 1.5}\n")
    assert main(["run", str(path), "--db", str(tmp_path / "x.sqlite")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:4: field 'sampling.hot.temprature': unknown field" in err
    assert not (tmp_path / "x.sqlite").exists()


def test_invalid_yaml_syntax_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [smollm2\nconversations: []\n")
    with pytest.raises(ExperimentError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_experiment(path)


# --- bootstrap -------------------------------------------------------------------------------

def test_bootstrap_covers_the_true_mean_of_skewed_data():
    rng = np.random.default_rng(7)
    trials, hits = 300, 0
    for i in range(trials):
        sample = rng.exponential(1.0, size=40)  # true mean 1, strongly skewed
        ci = mean_ci(sample, replicates=1000, seed=i)
        hits += ci.low <= 1.0 <= ci.high
    assert hits / trials >= 0.90


def test_cluster_bootstrap_covers_the_mean_of_correlated_tokens():
    """Turns of varying length whose tokens share a turn-level offset: resampling turns keeps
    coverage, where pretending the tokens are independent would not."""
    rng = np.random.default_rng(11)
    trials, hits, naive_hits = 200, 0, 0
    for i in range(trials):
        lengths = rng.integers(5, 60, size=30)
        offsets = rng.normal(0.0, 1.0, size=30)
        tokens = [off + rng.normal(0.0, 0.5, size=n) for off, n in zip(offsets, lengths, strict=True)]
        ci = cluster_mean_ci([t.sum() for t in tokens], lengths, replicates=1000, seed=i)
        naive = mean_ci(np.concatenate(tokens), replicates=500, seed=i)
        hits += ci.low <= 0.0 <= ci.high
        naive_hits += naive.low <= 0.0 <= naive.high
    assert hits / trials >= 0.88
    assert naive_hits / trials < 0.6  # why tokens are not the unit


def test_bootstrap_intervals_shrink_with_n():
    rng = np.random.default_rng(3)
    widths = {}
    for n in (25, 100, 400):
        ci = mean_ci(rng.exponential(1.0, size=n), seed=0)
        widths[n] = ci.high - ci.low
    assert widths[400] < widths[100] < widths[25]
    assert widths[400] < widths[25] / 2.5  # ~1/sqrt(n): a factor 4 expected


def test_bootstrap_is_deterministic_and_handles_edges():
    data = [1.0, 2.0, 4.0, 8.0]
    assert mean_ci(data, seed=5) == mean_ci(data, seed=5)
    single = cluster_mean_ci([6.0], [3])
    assert single is not None and single.low == single.high == single.mean == 2.0
    assert cluster_mean_ci([], []) is None and cluster_mean_ci([1.0], [0]) is None


# --- summaries and progress ----------------------------------------------------------------------

def _tok(turn, scope, role, ent, prompt="p", cond="c"):
    samp = None if scope == "prompt" else ent / 2
    return TokenStat(cond, turn, prompt, scope, role, (ent, ent + 1, samp, 0.5))


def test_summary_counts_a_repeated_prompt_once_and_keeps_sampling_entropy_apart():
    tokens = [_tok(1, "prompt", "user", 2.0), _tok(1, "prompt", "user", 4.0),
              _tok(2, "prompt", "user", 2.0), _tok(2, "prompt", "user", 4.0),  # same prompt, seed 2
              _tok(1, "generated", "assistant", 1.0), _tok(2, "generated", "assistant", 3.0)]
    rows = {(r.scope, r.role): r for r in summarize_tokens(tokens)}
    prompt = rows[("prompt", "user")]
    assert prompt.tokens == 2 and prompt.turns == 1 and prompt.mean("entropy_bits") == 3.0
    assert prompt.intervals["sampling_entropy_bits"] is None
    gen = rows[("generated", "assistant")].to_dict()
    assert gen["tokens"] == 2 and gen["mean_entropy_bits"] == 2.0 and gen["mean_sampling_entropy_bits"] == 1.0
    assert gen["perplexity"] == 2.0 ** 3.0 and gen["ci95"][0] <= 2.0 <= gen["ci95"][1]
    assert list(rows) == [("generated", "assistant"), ("prompt", "user")]


def test_progress_line_and_periodic_lines_off_a_terminal():
    assert progress_line(5, 10, 5, 60.0, width=10) == "[#####.....] 5/10 cells  5.0 cells/min  ETA 1m00s"
    now = [0.0]
    out = io.StringIO()
    bar = Progress(10, 2, out, tty=False, every=10.0, clock=lambda: now[0])
    for _ in range(8):
        now[0] += 3.0
        bar.advance("x")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("[####################] 10/10")  # 3 s, 12 s and the end
    tty = io.StringIO()
    bar = Progress(2, 0, tty, tty=True, clock=lambda: 1.0)
    bar.advance()
    bar.advance()
    bar.close()
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")


# --- the runner on the fake backend: resume, atomic cells ----------------------------------------


def _done_keys(db: Path, run_id: int) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [k for (k,) in conn.execute("SELECT c.key FROM cells c JOIN turns t ON t.cell_id = c.id "
                                           "WHERE c.run_id = ? AND c.status = 'done'", (run_id,))]


def test_interrupted_run_resumes_without_duplicates_or_gaps(tmp_path):
    cells, run_id, resumed, first, seen1 = fake_run(tmp_path, stop_after=4)
    assert not resumed and first.interrupted and first.ran == 4 and len(seen1) == 4
    assert sorted(_done_keys(tmp_path / "fake.sqlite", run_id)) == sorted(seen1)
    _, run2, resumed, second, seen2 = fake_run(tmp_path)
    assert run2 == run_id and resumed and second.already == 4 and not second.interrupted
    assert set(seen1).isdisjoint(seen2) and len(seen1) + len(seen2) == len(cells)
    done = _done_keys(tmp_path / "fake.sqlite", run_id)
    assert sorted(done) == sorted(c.key for c in cells)  # every cell exactly once, one turn each
    _, run3, _, third, seen3 = fake_run(tmp_path)  # finished: nothing left to run
    assert run3 == run_id and third.ran == 0 and not seen3
    _, run4, resumed, _, seen4 = fake_run(tmp_path, force_new=True)
    assert run4 != run_id and not resumed and len(seen4) == len(cells)


def test_a_cell_that_fails_mid_commit_leaves_nothing(tmp_path):
    exp = parse_experiment(FAKE, where="fake.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "f.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    good = {"id": 1, "piece": "a", "role": "user", "entropy_bits": 1.0, "surprisal_bits": 1.0,
            "eot_prob": 0.0, "varentropy_bits2": 0.0, "top": []}
    turn = {"mode": "reply", "prompt": "p", "text": "t", "stop_reason": "eos", "prompt_tokens": [good],
            "tokens": [good, {"id": 2}]}  # the second token row is malformed: the insert raises
    with pytest.raises(KeyError):
        commit_cell(conn, run_id, cells[0].key, turn, 1.0)
    assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0
    assert conn.execute("SELECT status FROM cells WHERE key = ?", (cells[0].key,)).fetchone()[0] == "pending"
    turn["tokens"] = [good]
    assert commit_cell(conn, run_id, cells[0].key, turn, 1.0)
    assert not commit_cell(conn, run_id, cells[0].key, turn, 1.0)  # already done: not written twice
    assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_report_loaders_give_the_contract_on_the_fake(tmp_path):
    cells, run_id, _, _, _ = fake_run(tmp_path)
    turns = report_turns(tmp_path / "fake.sqlite")
    assert len(turns) == len(cells)
    first = turns[0]
    assert set(first) == {"id", "label", "condition", "text", "stop_reason", "prompt_tokens", "tokens"}
    assert set(first["condition"]) == {"model", "template", "mode", "eos", "sampling", "seed", "conversation"}
    assert first["label"] == "fake · chatml · reply · eos=stop · default · seed 1"
    assert first["prompt_tokens"][0]["entropy_bits"] is None  # nothing predicts the first token
    json.dumps(turns)
    rows = report_summary(tmp_path / "fake.sqlite", run_id)
    required = {"condition", "scope", "role", "tokens", "mean_entropy_bits", "ci95", "mean_surprisal_bits",
                "perplexity", "mean_sampling_entropy_bits"}
    assert rows and all(required <= set(r) for r in rows)
    assert {r["scope"] for r in rows} == {"prompt", "generated"}
    json.dumps(rows)


def test_lab_core_stays_pure():
    import subprocess
    import sys

    code = ("import sys\nimport harness.experiment.spec, harness.stats.bootstrap, harness.experiment.summary, "
            "harness.experiment.db, harness.experiment.run, harness.cli.experiments, harness.generation.text_score\n"
            "print(sorted(m for m in ('llama_cpp', 'prompt_toolkit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cells_that_cannot_run_are_stored_as_errors_and_not_retried(tmp_path, capsys):
    text = FAKE.replace("templates: [chatml]", "templates: [chatml, no-such-template]")
    exp = parse_experiment(text, where="fake.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "e.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    errors: list[str] = []
    outcome = run_cells(exp, conn, run_id, cells, on_error=lambda c, m: errors.append(c.key),
                        open_backend=lambda model, threads: FakeBackend("Hello!"))
    assert outcome.errors == len(cells) // 2 == len(errors) and outcome.ran == len(cells) // 2
    assert all("no-such-template" in k for k in errors)
    again = run_cells(exp, conn, run_id, cells, open_backend=lambda model, threads: FakeBackend("Hello!"))
    assert again.ran == again.errors == 0 and again.already == len(cells)
    conn.close()
    assert main(["summary", str(tmp_path / "e.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "fake · chatml · reply · eos=stop · default" in out and "error: fake|no-such-template|" in out
    assert main(["summary", str(tmp_path / "e.sqlite"), "--run", "7"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run 7" in err
