"""Sequences decoded together on the fake backend: every value equals a serial run's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.backends.fake import FakeBackend
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template
from harness.stats.entropy import StatsWorkspace

SCRIPT = "Hi!<|im_end|>\n<|im_start|>user\nTell me more<|im_end|>\n"
CONV = Conversation.of(("user", "Hello"))


def bench(script: str = SCRIPT, confidence: float = 12.0) -> Workbench:
    backend = FakeBackend(script, confidence=confidence)
    return Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))


SETS = [
    SamplingParams(temperature=0, max_tokens=40, eos="stop"),
    SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=25, eos="ban", seed=1),
    SamplingParams(temperature=1.5, max_tokens=30, eos="continue", seed=2, repeat_penalty=1.3),
    SamplingParams(temperature=1.0, max_tokens=12, eos="ban", seed=3, stop=("!",)),
    SamplingParams(temperature=0.8, max_tokens=3, eos="stop", seed=4, logit_bias={"H": -5.0}),
]


def _values(gen):
    return [(t.id, t.role, t.stats.entropy_bits, t.stats.surprisal_bits, t.stats.eot_prob,
             t.stats.varentropy_bits2, t.stats.sampling_entropy_bits, t.stats.top_ids) for t in gen.tokens]


def _assert_same(a, b):
    assert (a.text, a.stop_reason) == (b.text, b.stop_reason)
    va, vb = _values(a), _values(b)
    assert [v[:2] + v[-1:] for v in va] == [v[:2] + v[-1:] for v in vb]
    for x, y in zip(va, vb, strict=True):
        assert np.allclose(x[2:7], y[2:7], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("confidence", [12.0, 1.0])  # a sure script; a flat one (free sampling)
def test_batch_equals_serial_token_for_token(confidence):
    wb = bench(confidence=confidence)
    plan = wb.plan(CONV)
    serial = [wb.generate(plan, p) for p in SETS]
    together = wb.generate_many(plan, SETS)
    assert len(together) == len(SETS)
    for a, b in zip(serial, together, strict=True):
        _assert_same(a, b)
        assert [t.stats for t in a.prompt_tokens] == [t.stats for t in b.prompt_tokens]
    if confidence > 1:
        assert {g.stop_reason for g in together} == {"eos", "max_tokens", "stop_string"}


def test_one_decode_per_step_and_the_batch_shrinks():
    wb = bench(confidence=1.0)
    params = [SamplingParams(temperature=1.0, max_tokens=n, eos="ban", seed=n) for n in (2, 5, 9)]
    plan = wb.plan(CONV)
    gens = wb.generate_many(plan, params)
    assert [len(g.tokens) for g in gens] == [2, 5, 9]
    prompt_decodes = -(-len(wb.prompt_records(plan)) // wb.backend.max_logit_rows)
    seqs = wb.backend._sequences
    assert seqs.step_sizes == [3, 2, 2, 2, 1, 1, 1, 1]  # a step after each draw but the last
    assert seqs.decode_calls == prompt_decodes + len(seqs.step_sizes)  # the prompt once, one per step


def test_prompt_prefix_reused_between_batches():
    wb = bench()
    plan = wb.plan(CONV)
    wb.generate_many(plan, SETS[:2])
    wb.generate_many(plan, SETS[:2])
    assert wb._batch_evaluator.reused == len(wb.prompt_records(plan)) - 1


def test_stop_request_interrupts_every_live_sequence():
    wb = bench(confidence=1.0)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 3

    params = [SamplingParams(temperature=1.0, max_tokens=50, eos="ban", seed=s) for s in range(4)]
    gens = wb.generate_many(wb.plan(CONV), params, should_stop=stop)
    assert [g.stop_reason for g in gens] == ["interrupted"] * 4
    assert [len(g.tokens) for g in gens] == [3] * 4


def test_each_sequence_streams_its_own_tokens():
    wb = bench(confidence=1.0)
    seen: dict[int, list[str]] = {0: [], 1: []}
    streams = [lambda e, i=i: seen[i].append(e.text) for i in (0, 1)]
    params = [SamplingParams(temperature=1.0, max_tokens=6, eos="ban", seed=s) for s in (7, 8)]
    gens = wb.generate_many(wb.plan(CONV), params, on_token=streams)
    assert ["".join(seen[i]) for i in (0, 1)] == [g.text for g in gens]


def test_block_statistics_equal_row_by_row():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(6, 1000)).astype(np.float32)
    ws, ref = StatsWorkspace(1000, [3, 7]), StatsWorkspace(1000, [3, 7])
    block = ws.block(logits)
    for i, row in enumerate(logits):
        one = ref.step(row, 11)
        assert math.isnan(block[i].surprisal_bits)
        assert ws.block_surprisal(i, 11) == pytest.approx(one.surprisal_bits, rel=1e-5)
        assert block[i].entropy_bits == pytest.approx(one.entropy_bits, rel=1e-5)
        assert block[i].varentropy_bits2 == pytest.approx(one.varentropy_bits2, rel=1e-4)
        assert block[i].eot_prob == pytest.approx(one.eot_prob, rel=1e-5)
        assert block[i].top_ids == one.top_ids
        assert list(ws.block_top(i, 9)) == list(ref.raw_top(9))


def test_uniform_block_has_entropy_log2_vocab():
    ws = StatsWorkspace(512, [])
    block = ws.block(np.zeros((3, 512), np.float32) + np.array([[0.0], [5.0], [-9.0]], np.float32))
    assert all(s.entropy_bits == pytest.approx(9.0, abs=1e-5) for s in block)
