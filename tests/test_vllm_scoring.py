"""Scoring on a server through vLLM's prompt_logprobs, against a stub speaking its format."""

from __future__ import annotations

import math

import pytest

from harness.backends.openai_compat import OpenAICompatEngine
from harness.errors import HarnessError
from harness.generation.remote_workbench import RemoteWorkbench, prompt_step
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template
from tests.support.vllm_stub import VllmStub, serve

CONV = Conversation.of(("user", "What is the capital of France?"), ("assistant", "Paris, of course."))


def test_prompt_step_takes_top_k_by_rank_and_the_token_that_came():
    row = [(5, 0.5, 1), (7, 0.3, 2), (9, 0.01, 40)]  # token 9 came, ranked 40th
    stats = prompt_step(row, 9, 2, frozenset({7}))
    assert stats.top_ids == (5, 7) and stats.truncated
    assert stats.surprisal_bits == pytest.approx(-math.log2(0.01))
    assert stats.eot_prob == pytest.approx(0.3) and stats.tail_mass == pytest.approx(0.2)


@pytest.mark.model
def test_score_on_a_vllm_stub_matches_local_scoring(smollm2_backend, smollm2):
    server, url = serve(VllmStub(smollm2_backend))
    try:
        template = load_template("chatml")
        remote = RemoteWorkbench(OpenAICompatEngine(url), template)
        plan, tokens = remote.score(CONV)
        smollm2.set_template(template)
        local_plan, local = smollm2.score(CONV)
    finally:
        server.shutdown()
    assert plan.prompt == local_plan.prompt
    assert [t.id for t in tokens] == [t.id for t in local]
    assert [t.role for t in tokens] == [t.role for t in local]
    assert tokens[0].stats is None
    for r, loc in zip(tokens[1:], local[1:], strict=True):
        assert r.stats.truncated
        assert r.stats.surprisal_bits == pytest.approx(loc.stats.surprisal_bits, abs=1e-3)  # exact
        assert r.stats.entropy_bits <= loc.stats.entropy_bits + 1e-3  # a lower bound
        assert r.stats.top_ids[0] == loc.stats.top_ids[0]


@pytest.mark.model
def test_a_server_without_prompt_logprobs_is_one_line(smollm2_backend):
    server, url = serve(VllmStub(smollm2_backend, prompt_logprobs=False))
    try:
        remote = RemoteWorkbench(OpenAICompatEngine(url), load_template("chatml"))
        with pytest.raises(HarnessError, match="prompt_logprobs"):
            remote.score(CONV)
    finally:
        server.shutdown()


@pytest.mark.model
def test_score_backend_from_the_cli(smollm2_backend, tmp_path, capsys):
    import json

    from harness.cli.main import main
    from tests.support.cli import write_messages

    messages = write_messages(tmp_path / "c.json", CONV.to_dicts())
    server, url = serve(VllmStub(smollm2_backend))
    try:
        assert main(["score", "--backend", "openai+" + url, "--template", "chatml", "--messages", str(messages),
                     "--json"]) == 0
    finally:
        server.shutdown()
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"][1]["truncated"] is True and data["roles"]["assistant"]["tokens"] > 0
    assert data["calibration"]["n"] == len(data["tokens"]) - 1


@pytest.mark.model
def test_fixed_text_cells_run_on_a_vllm_stub(smollm2_backend, tmp_path):
    from harness.experiment.db import connect, load_turns, open_run
    from harness.experiment.pool import run_cells_remote
    from harness.experiment.spec import expand, parse_experiment

    exp = parse_experiment("""\
models: [{name: stub, templates: [chatml]}]
modes: [score, {score: swap_roles}]
conversations:
  - {name: a, messages: [{role: user, content: "The same words either way."}]}
""", where="x.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "r.sqlite")
    run_id, _ = open_run(conn, exp, cells)
    server, url = serve(VllmStub(smollm2_backend))
    try:
        outcome = run_cells_remote(exp, conn, run_id, cells, ["openai+" + url])
    finally:
        server.shutdown()
    assert outcome.ran == 2 and outcome.errors == 0
    turns = load_turns(conn, run_id)
    conn.close()
    assert {t["stop_reason"] for t in turns} == {"scored"}
    assert all(t["prompt_tokens"][1]["truncated"] for t in turns)
