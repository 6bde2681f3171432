"""Integration on the real SmolLM2 through llama-cpp-python: EOS policies, roles, entropy."""

from __future__ import annotations

import numpy as np
import pytest

from harness.generation.evaluation import encode_prompt
from harness.generation.settings import SamplingParams
from harness.prompt.conversation import Conversation
from tests.support.logits import reference_rows

pytestmark = pytest.mark.model

HELLO = Conversation.of(("user", "Say hello in one short sentence."))


def test_run_past_eos_labels_assistant_then_user(smollm2):
    # seed 2 at T=0.8: the model ends its turn, then writes `<|im_start|>user\n...` itself
    gen = smollm2.generate(smollm2.plan(HELLO), SamplingParams(seed=2, eos="continue", max_tokens=60))
    roles = [t.role for t in gen.tokens]
    assert roles[0] == "assistant"
    eot = next(i for i, t in enumerate(gen.tokens) if t.id in smollm2.backend.info.eog_ids)
    assert set(roles[:eot]) == {"assistant"}
    assert "user" in roles[eot:]
    first_user = roles.index("user")
    assert first_user > eot
    assert all(r == "template" for r in roles[eot:first_user])
    user_text = "".join(t.piece for t in gen.tokens[first_user:] if t.role == "user")
    assert len(user_text.split()) >= 5  # a real request, not a stray token
    assert gen.stop_reason == "max_tokens"


def test_ban_means_no_end_of_generation_token(smollm2):
    gen = smollm2.generate(smollm2.plan(HELLO), SamplingParams(seed=1, eos="ban", max_tokens=80))
    eog = smollm2.backend.info.eog_ids
    assert len(gen.tokens) == 80 and gen.stop_reason == "max_tokens"
    assert not any(t.id in eog for t in gen.tokens)
    assert all(t.role == "assistant" for t in gen.tokens)


def test_stop_policy_ends_on_end_of_turn(smollm2):
    gen = smollm2.generate(smollm2.plan(HELLO), SamplingParams(seed=1, eos="stop", max_tokens=100))
    assert gen.stop_reason == "eos"
    assert gen.tokens[-1].id in smollm2.backend.info.eog_ids
    assert "<|im_end|>" not in gen.text and gen.text.strip()


def test_impersonate_produces_user_tokens(smollm2):
    conv = HELLO.append("assistant", "Hello! How can I help you today?")
    gen = smollm2.generate(smollm2.plan(conv, "impersonate"), SamplingParams(seed=3, eos="stop", max_tokens=40))
    content = [t for t in gen.tokens if t.role != "template"]
    assert content and {t.role for t in content} == {"user"}
    assert gen.prompt.endswith("<|im_start|>user\n")


def test_prefill_starts_the_assistant_turn(smollm2):
    plan = smollm2.plan(HELLO, "prefill", "Ahoy")
    gen = smollm2.generate(plan, SamplingParams(seed=0, eos="stop", max_tokens=20))
    assert plan.prompt.endswith("<|im_start|>assistant\nAhoy")
    assert gen.prompt_tokens[-1].role == "assistant"
    assert all(t.role == "assistant" for t in gen.tokens[:-1])


def _reference_rows(backend, ids: list[int], one_by_one_from: int | None = None) -> np.ndarray:
    """llama.cpp's own logits for every position, straight from the backend's decode."""
    return reference_rows(backend, ids, one_by_one_from)


def _entropy_surprisal(row: np.ndarray, token: int) -> tuple[float, float]:
    p = np.exp(row - row.max())
    p /= p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum()), float(-np.log2(p[token]))


def test_entropy_and_surprisal_match_numpy_on_llama_cpp_logits(smollm2):
    conv = HELLO.append("assistant", "Hello there, friend!")
    plan, scored = smollm2.score(conv)
    gen = smollm2.generate(smollm2.plan(conv.append("user", "Again?")),
                           SamplingParams(temperature=0, eos="ban", max_tokens=12))
    ids = [t.id for t in scored]
    rows = _reference_rows(smollm2.backend, ids)
    for i in range(1, len(ids)):
        ent, sur = _entropy_surprisal(rows[i - 1], ids[i])
        assert scored[i].stats.entropy_bits == pytest.approx(ent, abs=1e-3)
        assert scored[i].stats.surprisal_bits == pytest.approx(sur, abs=1e-3)
    # generated tokens: same check on prompt + generated ids
    all_ids = [t.id for t in gen.prompt_tokens] + [t.id for t in gen.tokens]
    start = len(gen.prompt_tokens)
    rows = _reference_rows(smollm2.backend, all_ids, one_by_one_from=start)
    eog = sorted(smollm2.backend.info.eog_ids)
    for k, token in enumerate(gen.tokens):
        row = rows[start + k - 1]
        ent, sur = _entropy_surprisal(row, token.id)
        p = np.exp(row - row.max())
        p /= p.sum()
        assert token.stats.entropy_bits == pytest.approx(ent, abs=1e-3)
        assert token.stats.surprisal_bits == pytest.approx(sur, abs=1e-3)
        assert token.stats.eot_prob == pytest.approx(float(p[eog].sum()), abs=1e-4)
        assert token.stats.top_ids[0] == int(np.argmax(row))


def test_score_roles_and_prompt_encoding(smollm2):
    conv = Conversation.of(("system", "You are terse."), ("user", "Hi"), ("assistant", "Hello."))
    plan, tokens = smollm2.score(conv)
    assert tokens[0].stats is None
    assert {t.role for t in tokens} == {"system", "user", "assistant", "template"}
    assert "".join(t.piece for t in tokens) == plan.prompt
    specials = [t for t in tokens if t.piece in ("<|im_start|>", "<|im_end|>")]
    assert specials and all(t.role == "template" for t in specials)
    again = encode_prompt(smollm2.backend, plan.prompt, plan.segments)
    assert [t.id for t in again] == [t.id for t in tokens]
