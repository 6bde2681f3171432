"""Issue 26, finding 2: text shaped like a segmentation sentinel (U+E000 digits U+E001) is data.
A tool name, a ``name`` field or a ``--var`` value holding one with 5,000 digits once made the
segment finder call ``int()`` past Python's digit limit; a template could write a literal
sentinel to get its own scaffold labelled as message content. Sentinels now carry a fresh
random tag per rendering and a bounded index."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.prompt.conversation import Conversation
from harness.prompt.modes import plan_prompt
from harness.prompt.segments import CONTENT, render_segmented
from harness.prompt.templates import ChatTemplate, load_template

QWEN3 = load_template(str(Path(__file__).parent / "data" / "templates" / "Qwen-Qwen3-0.6B.jinja"))
LONG = "\ue000" + "7" * 5000 + "\ue001"  # past int()'s 4,300-digit limit
SHORT = "\ue0000\ue001"  # what the first sentinel of a rendering used to be


def _call(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": "{}"}}


@pytest.mark.parametrize("messages,variables", [
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [_call(LONG)]}], None),
    ([{"role": "user", "content": "hi", "name": LONG}], None),
    ([{"role": "user", "content": "hi"}], {"tools": [{"type": "function", "function": {"name": LONG}}]}),
    ([{"role": "user", "content": "hi"}], {"tools": [{"type": "function", "function": {"name": SHORT}}]}),
])
def test_sentinel_shaped_data_renders_and_keeps_the_real_contents(messages, variables):
    text, segments = render_segmented(QWEN3, messages, add_generation_prompt=True, variables=variables)
    content = [text[s.start:s.end] for s in segments if s.kind == CONTENT and s.role == "user"]
    assert content == ["hi"]  # the user's text, and nothing the tools or names brought


def test_every_mode_plans_with_a_sentinel_shaped_tool_name():
    conversation = Conversation.from_dicts([{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "ok", "tool_calls": [_call(LONG)]},
                                            {"role": "user", "content": "again"}])
    for mode in ("reply", "impersonate", "continue"):
        plan = plan_prompt(conversation, QWEN3, mode)
        assert LONG in plan.prompt


def test_a_template_cannot_forge_a_sentinel_to_label_its_scaffold_as_content():
    forger = ChatTemplate("forger", "{% for m in messages %}<s>{{ m.content }}</s>SECRET" + SHORT
                          + "{% endfor %}", "test")
    text, segments = render_segmented(forger, [{"role": "user", "content": "hi"}], add_generation_prompt=False)
    content = [(text[s.start:s.end], s.role) for s in segments if s.kind == CONTENT]
    assert content == [("hi", "user")]
    assert text.endswith(SHORT)  # rendered as written, and scaffold
