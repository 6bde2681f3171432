"""The token loop on the fake backend: EOS policies, stop strings, interrupts, KV reuse."""

from __future__ import annotations

import pytest

from harness.backends.fake import FakeBackend
from harness.errors import CommandError, ContextOverflowError
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template

SCRIPT = "Hi!<|im_end|>\n<|im_start|>user\nTell me more<|im_end|>\n"
CONV = Conversation.of(("user", "Hello"))


def bench(script: str = SCRIPT, **kw) -> Workbench:
    backend = FakeBackend(script, **kw)
    return Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))


def greedy(**kw) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=kw.pop("max_tokens", 40), **kw)


def test_stop_policy_ends_at_end_of_turn_and_keeps_the_eog_token_record():
    wb = bench()
    gen = wb.generate(wb.plan(CONV), greedy(eos="stop"))
    assert gen.stop_reason == "eos"
    assert gen.text == "Hi!"
    assert gen.tokens[-1].piece == "<|im_end|>" and gen.tokens[-1].role == "template"
    assert {t.role for t in gen.tokens[:-1]} == {"assistant"}


def test_continue_policy_runs_past_and_labels_the_user_turn():
    wb = bench()
    gen = wb.generate(wb.plan(CONV), greedy(eos="continue", max_tokens=len(SCRIPT)))
    assert gen.text.startswith("Hi!<|im_end|>\n<|im_start|>user\nTell me more")
    roles = [t.role for t in gen.tokens]
    first_user = roles.index("user")
    assert set(roles[:3]) == {"assistant"} and roles[first_user - 1] == "template"
    assert "".join(t.piece for t in gen.tokens if t.role == "user").startswith("Tell me more")


def test_ban_policy_never_emits_an_eog_token():
    wb = bench()
    gen = wb.generate(wb.plan(CONV), greedy(eos="ban", max_tokens=30))
    eog = wb.backend.info.eog_ids
    assert gen.stop_reason == "max_tokens" and len(gen.tokens) == 30
    assert not any(t.id in eog for t in gen.tokens)


def test_impersonate_writes_user_tokens():
    wb = bench("Question here<|im_end|>")
    conv = Conversation.of(("user", "Hi"), ("assistant", "Hello"))
    gen = wb.generate(wb.plan(conv, "impersonate"), greedy(eos="stop"))
    assert gen.text == "Question here"
    assert {t.role for t in gen.tokens[:-1]} == {"user"}


def test_stop_string_cuts_text():
    wb = bench()
    gen = wb.generate(wb.plan(CONV), greedy(eos="continue", stop=("Tell",)))
    assert gen.stop_reason == "stop_string"
    assert gen.text == "Hi!<|im_end|>\n<|im_start|>user\n"


def test_interrupt_keeps_partial_text():
    wb = bench()
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    gen = wb.generate(wb.plan(CONV), greedy(eos="continue"), should_stop=stop_after_two)
    assert gen.stop_reason == "interrupted" and gen.text == "Hi" and len(gen.tokens) == 2


def test_streaming_events_concatenate_to_the_text():
    wb = bench()
    seen = []
    gen = wb.generate(wb.plan(CONV), greedy(eos="continue", max_tokens=25), on_token=seen.append)
    assert "".join(e.text for e in seen) == gen.text
    assert seen[0].role == "assistant"


def test_prompt_tokens_carry_roles_and_kv_prefix_is_reused():
    wb = bench()
    first = wb.generate(wb.plan(CONV), greedy(eos="stop"))
    roles = {t.role for t in first.prompt_tokens}
    assert roles == {"user", "template"} and first.prompt_tokens[0].stats is None
    assert all(t.stats is not None for t in first.prompt_tokens[1:])
    longer = CONV.append("assistant", "Hi!").append("user", "Again")
    second = wb.generate(wb.plan(longer), greedy(eos="stop"))
    assert wb.evaluator.reused > len(first.prompt_tokens) // 2
    # statistics of reused tokens equal what a cold evaluation computes
    cold = bench()
    cold_gen = cold.generate(cold.plan(longer), greedy(eos="stop"))
    for a, b in zip(second.prompt_tokens[1:], cold_gen.prompt_tokens[1:], strict=True):
        assert a.stats.surprisal_bits == pytest.approx(b.stats.surprisal_bits, abs=1e-5)


def test_context_overflow_is_a_clear_error_and_bias_errors_name_the_token():
    wb = bench(n_ctx=20)
    with pytest.raises(ContextOverflowError, match="context of 20"):
        wb.generate(wb.plan(CONV), greedy())
    wb = bench()
    with pytest.raises(CommandError, match="not exactly one token"):
        wb.generate(wb.plan(CONV), greedy(logit_bias={"two tokens": 1.0}))


def test_logit_bias_by_text_and_id():
    wb = bench()
    gen = wb.generate(wb.plan(CONV), greedy(eos="stop", max_tokens=3, logit_bias={"Z": 50.0}))
    assert gen.text == "ZZZ"
    gen = wb.generate(wb.plan(CONV), greedy(eos="stop", max_tokens=2, logit_bias={f"#{ord('Q')}": 50.0}))
    assert gen.text == "QQ"
    gen = wb.generate(wb.plan(CONV), greedy(eos="stop", max_tokens=2, logit_bias={"7": 50.0}))
    assert gen.text == "77"  # a number is a text: the token that reads 7, not id 7


def test_stop_policy_ends_at_a_close_marker_written_as_plain_text():
    # a model for which the template's <|im_end|> is no token at all (Gemma-3 base under ChatML):
    # it spells the marker in bytes, and under eos=stop that ends its turn there
    wb = bench("Hi there!<|im_end|>\n<|im_start|>user\nMore", specials=("<s>", "</s>"), eog=("</s>",))
    gen = wb.generate(wb.plan(CONV), greedy(eos="stop"))
    assert gen.stop_reason == "end_of_turn"
    assert gen.text == "Hi there!"
    assert "".join(t.piece for t in gen.tokens).endswith("<|im_end|>")  # the marker's tokens are kept
    roles = [t.role for t in gen.tokens]  # byte tokens: 9 of "Hi there!", 10 of the marker
    assert roles == ["assistant"] * 9 + ["template"] * 10
    # under continue the same model goes on into the user turn it writes
    gen = wb.generate(wb.plan(CONV), greedy(eos="continue", max_tokens=40))
    assert gen.stop_reason == "max_tokens" and "<|im_start|>user\nMor" in gen.text


def test_an_explicit_stop_string_equal_to_the_marker_is_reported_as_a_stop_string():
    wb = bench("Hi!<|im_end|>", specials=("<s>", "</s>"), eog=("</s>",))
    gen = wb.generate(wb.plan(CONV), greedy(eos="stop", stop=("<|im_end|>",)))
    assert gen.stop_reason == "stop_string" and gen.text == "Hi!"


@pytest.mark.parametrize(("chunks", "stops", "want"), [
    (["ab", "c<", "|im_", "end|>", "x"], ["<|im_end|>"], ("abc", "<|im_end|>", 4)),
    (["one", " STOP", " two"], ["STOP", "two"], ("one ", "STOP", 2)),
    (["x", "yz"], ["yz", "xy"], ("", "xy", 2)),  # the earliest match wins
    (["plain", " text"], [], ("plain text", None, 2)),
])
def test_growing_text_cuts_at_the_earliest_stop_across_token_boundaries(chunks, stops, want):
    from harness.generation.stop_text import GrowingText

    text = GrowingText(stops)
    added = 0
    for chunk in chunks:
        added += 1
        _, hit = text.add(chunk.encode())
        if hit is not None:
            break
    assert (text.text, hit, added) == want
