"""The live view streams what the turn parser finally decides (issue 23, finding 7): a token's
streamed role is its final role, and the streamed text is exactly the turn's text — text that may
still become a turn marker (``<|im_start|>ass``) or a stop string waits for the next token."""

from __future__ import annotations

import pytest

from harness.backends.fake import FakeBackend
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.markers import derive_markers
from harness.prompt.templates import load_template
from harness.prompt.turns import TurnParser, partial_start

RUN_ON = "Hi!<|im_end|>\n<|im_start|>user\nMore please<|im_end|>\n<|im_start|>assistant\nOk<|im_end|>"


def streamed(script: str, **params):
    backend = FakeBackend(script)
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    events: list = []
    plan = bench.plan(Conversation.of(("user", "Hello")))
    sampling = SamplingParams(**{"temperature": 0, "max_tokens": 60, **params})
    gen = bench.generate(plan, sampling, on_token=events.append)
    return gen, events


def test_past_end_of_turn_each_streamed_role_is_the_final_one():
    gen, events = streamed(RUN_ON, eos="continue")
    assert [e.role for e in events] == [t.role for t in gen.tokens]
    assert {"ass", "as", "us", "use"}.isdisjoint(e.role for e in events)  # no half-read role names
    assert "".join(e.text for e in events) == gen.text


@pytest.mark.parametrize("stop", ["###", "re ##"])
def test_a_stop_string_forming_is_never_streamed(stop):
    gen, events = streamed("Hi there, more ### please ### and more", eos="ban", stop=(stop,), max_tokens=30)
    assert gen.stop_reason == "stop_string"
    assert "".join(e.text for e in events) == gen.text
    assert len(events) == len(gen.tokens)  # every token is streamed once, the cut ones with no text


def test_settled_holds_back_a_marker_or_role_name_that_may_still_grow():
    backend = FakeBackend()
    template = load_template("gguf", embedded=backend.info.chat_template)
    parser = TurnParser(derive_markers(template, {"bos_token": "<s>", "eos_token": "</s>"}), ["<|im_end|>"])
    text = "Hi!<|im_end|>\n<|im_start|>ass"
    assert parser.settled(text) == text.index("<|im_start|>")
    assert parser.settled(text + "istant\n") == len(text) + len("istant\n")
    assert parser.settled("Hi!<|im_") == 3
    assert partial_start("ab##", ["###"]) == 2 and partial_start("ab", ["###"]) == 2
