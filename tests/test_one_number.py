"""One number per token, whatever the path, on the real bundled models.

A token's statistics may depend on the model, the build, the engine options, the template, the
conversation and the tokens before it; never on the batch size, the batch-mates, the cache, or
whether the token was generated or scored (issue "One number per token, whatever the path").
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from harness.backends.base import EngineOptions
from harness.backends.invariance import measure
from harness.experiment.db import connect, open_run, run_info
from harness.experiment.run import decode_settings, run_cells
from harness.experiment.spec import expand, parse_experiment
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template

pytestmark = [pytest.mark.model, pytest.mark.gemma]

EXPERIMENT = """\
name: one-number
models:
  - {name: smollm2, templates: [gguf]}
  - {name: gemma3-270m, templates: [gemma]}
modes: [reply, past-eos]
eos: [stop]
sampling:
  t: {temperature: 0.9, top_k: 40, top_p: 0.95, min_p: 0.05}
seeds: [1, 2, 3]
max_tokens: 20
n_ctx: 512
threads: 2
conversations:
  - name: tea
    modes: [reply]
    messages: [{role: user, content: "How do I brew green tea?"}]
  - name: trip
    modes: [past-eos]
    messages:
      - {role: system, content: "You are a terse travel agent."}
      - {role: user, content: "Plan one day in Lisbon."}
"""


def _run(tmp: Path, batch: int, *, seeds: str | None = None, name: str) -> dict[tuple, list[tuple]]:
    text = EXPERIMENT + f"batch: {batch}\n"
    if seeds is not None:
        text = text.replace("seeds: [1, 2, 3]", f"seeds: {seeds}")
    exp = parse_experiment(text, where=f"{name}.yaml", base=tmp)
    cells = expand(exp)
    conn = connect(tmp / f"{name}.sqlite")
    run_id, _ = open_run(conn, exp, cells, decode=decode_settings(exp))
    run_cells(exp, conn, run_id, cells)
    info = run_info(conn, run_id)
    assert info["cells"] == {"done": len(cells)}
    assert all(path["invariant"] is True for path in info["decode"].values())
    conn.close()
    return _tokens(tmp / f"{name}.sqlite")


def _tokens(db: Path) -> dict[tuple, list[tuple]]:
    """(model, conversation, seed) -> every generated token: id, entropy, surprisal, EOT, varentropy."""
    conn = sqlite3.connect(db)
    out: dict[tuple, list[tuple]] = {}
    for model, conv, seed, tid, ent, sur, eot, var in conn.execute(
            "SELECT c.model, c.conversation, c.seed, k.token_id, k.entropy_bits, k.surprisal_bits, k.eot_prob,"
            " k.varentropy_bits2 FROM tokens k JOIN turns t ON t.id = k.turn_id JOIN cells c ON c.id = t.cell_id"
            " WHERE k.scope = 'generated' ORDER BY c.id, t.id, k.pos"):
        out.setdefault((model, conv, seed), []).append((tid, ent, sur, eot, var))
    conn.close()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-number")
    return {"batch1": _run(tmp, 1, name="b1"), "batch6": _run(tmp, 6, name="b6"),
            "seed3": _run(tmp, 1, seeds="[3]", name="alone")}


def test_the_default_decode_path_is_bitwise_invariant_on_both_models(smollm2_backend, gemma_backend):
    for backend in (smollm2_backend, gemma_backend):
        assert backend.decode_path.invariant is True, backend.decode_path.probe
        found = measure(backend)
        assert (found.batch_vs_rows, found.batch_mates, found.serial_vs_sequences) == (0.0, 0.0, 0.0)


def test_a_decode_path_that_is_not_invariant_is_detected_and_said():
    from harness.models.registry import open_backend

    backend = open_backend("gemma3-270m", n_ctx=1024, n_threads=2, engine=EngineOptions(type_v="f16"))
    try:
        path = backend.decode_path
        assert path.invariant is False and "batch vs rows" in path.probe
        assert path.notice() is not None and "not batch-invariant" in path.notice()
        assert "\n" not in path.notice()
    finally:
        backend.close()


def test_batch_size_and_batch_mates_change_no_text_and_no_number(runs):
    one, six = runs["batch1"], runs["batch6"]
    assert one.keys() == six.keys() and len(one) == 12
    for key in one:
        assert one[key] == six[key], key  # ids and every statistic, exactly


def test_every_seed_of_a_prompt_sees_the_same_first_distribution_and_a_cell_rerun_alone_reproduces(runs):
    one = runs["batch1"]
    for model in ("smollm2", "gemma3-270m"):
        for conv in ("tea", "trip"):
            # the distribution before the first token (its surprisal depends on the token drawn)
            firsts = {tuple(one[(model, conv, s)][0][i] for i in (1, 3, 4)) for s in (1, 2, 3)}
            assert len(firsts) == 1, (model, conv, firsts)
    alone = runs["seed3"]
    for key, tokens in alone.items():
        assert tokens == one[key]


@pytest.fixture(scope="module")
def gemma(gemma_backend):
    bench = Workbench(gemma_backend, load_template("gemma"))
    yield bench
    bench.evaluator.forget()


QUESTION = Conversation.of(("user", "Name three rivers in Europe and say which is longest."))


@pytest.mark.parametrize("which", ["smollm2", "gemma"])
@pytest.mark.parametrize("params", [SamplingParams(temperature=0, max_tokens=24, eos="stop"),
                                    SamplingParams(temperature=0.9, seed=4, max_tokens=24, eos="stop")])
def test_scoring_a_generated_reply_gives_the_values_generation_gave(which, params, request):
    bench = request.getfixturevalue(which)
    bench.evaluator.forget()
    gen = bench.generate(bench.plan(QUESTION), params)
    assert gen.round_trip is True, gen.turn.note
    text_tokens = [t for t in gen.tokens if t.id not in bench.eog_ids]
    plan, scored = bench.score(Conversation(QUESTION.messages + (gen.message,)))
    prompt_len = len(gen.prompt_tokens)
    tail = scored[prompt_len:prompt_len + len(text_tokens)]
    # A sampled reply may hold a token sequence its text does not tokenize back to (Gemma's
    # vocabulary has several spellings of some pieces): from there on the tokens differ, and so
    # may their values. Up to there the tokens are the same, and so must every value be.
    same = next((i for i, (a, b) in enumerate(zip(tail, text_tokens, strict=False)) if a.id != b.id),
                min(len(tail), len(text_tokens)))
    assert same >= min(12, len(text_tokens)), (same, [t.id for t in tail], [t.id for t in text_tokens])
    for got, want in zip(tail[:same], text_tokens[:same], strict=True):
        assert abs(got.stats.entropy_bits - want.stats.entropy_bits) <= 1e-4
        assert abs(got.stats.surprisal_bits - want.stats.surprisal_bits) <= 1e-4
        assert got.stats.top_ids == want.stats.top_ids


def test_gemma_prompt_statistics_are_within_2e_5_bits_of_float64(gemma):
    gemma.evaluator.forget()
    plan, scored = gemma.score(QUESTION)
    ids = [t.id for t in scored]
    backend = gemma.backend
    backend.truncate(0)
    logits = np.array(backend.decode(ids, all_logits=True), dtype=np.float64)
    gemma.evaluator.forget()
    worst = 0.0
    for row, token in zip(logits[:-1], scored[1:], strict=True):
        z = row - row.max()
        p = np.exp(z)
        p /= p.sum()
        logp = np.log(np.where(p > 0, p, 1.0))
        entropy = float(-(p * logp).sum()) / math.log(2)
        worst = max(worst, abs(entropy - token.stats.entropy_bits))
    assert len(ids) > 10 and worst <= 2e-5
