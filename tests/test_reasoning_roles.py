"""Roles for what a turn is made of: ``reasoning``, ``tool_call`` and ``tool``, in prompts and in
generated text; thinking delimiters derived by probe rendering, the known-format table beside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.backends.fake import FakeBackend
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.blocks import derive_blocks
from harness.prompt.conversation import Conversation
from harness.prompt.markers import derive_markers
from harness.prompt.modes import plan_prompt
from harness.prompt.templates import load_template
from harness.prompt.turns import TurnParser
from tests.support.cli import harness, write_messages

TEMPLATES = Path(__file__).resolve().parent / "data" / "templates"
QWEN3 = load_template(str(TEMPLATES / "Qwen-Qwen3-0.6B.jinja"))
R1 = load_template(str(TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"))
GPT_OSS = load_template(str(TEMPLATES / "openai-gpt-oss-120b.jinja"))
REASONED = [{"role": "user", "content": "Hi"},
            {"role": "assistant", "reasoning_content": "The user greets me.", "content": "Hello there!"}]


def _texts(text, segments, role):
    return [text[s.start:s.end] for s in segments if s.role == role]


def _content(parser, text, start):
    return [(s.role, text[s.start:s.end]) for s in parser.parse(text, start) if s.role != "template"]


# --- delimiters from the template ---------------------------------------------------------------

@pytest.mark.parametrize("template, open_, close", [
    (QWEN3, "<think>", "</think>"),
    (GPT_OSS, "<|channel|>analysis<|message|>", "<|end|><|start|>assistant<|channel|>final<|message|>"),
])
def test_thinking_delimiters_are_derived_by_probe_rendering(template, open_, close):
    derived = [b for b in derive_blocks(template).derived if b.role == "reasoning"]
    assert [(b.open, b.close) for b in derived] == [(open_, close)]


def test_tool_call_delimiters_are_derived_for_qwen3():
    assert [(b.role, b.open, b.close) for b in derive_blocks(QWEN3).derived if b.role == "tool_call"] == \
        [("tool_call", "<tool_call>", "</tool_call>")]


def test_a_generation_prompt_that_opens_the_thinking_block():
    on = derive_markers(R1, {"enable_thinking": True})
    off = derive_markers(R1, {"enable_thinking": False})
    assert on.generation_prompt.endswith("<think>\n")
    assert derive_blocks(R1, {"enable_thinking": True}, on.generation_prompt).prompt_opens_reasoning
    assert not derive_blocks(R1, {"enable_thinking": False}, off.generation_prompt).prompt_opens_reasoning
    parser = TurnParser(on, blocks=derive_blocks(R1, {"enable_thinking": True}, on.generation_prompt))
    start = parser.start_role("assistant", "reply")
    assert start == "reasoning"
    text = "Let me think.\n</think>\n\nHi!"
    assert _content(parser, text, start) == [("reasoning", "Let me think.\n"), ("assistant", "\n\nHi!")]


# --- prompts -----------------------------------------------------------------------------------

def test_prompt_segments_of_reasoning_tool_calls_and_tool_results():
    messages = [{"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": "", "reasoning_content": "Use the tool.",
                 "tool_calls": [{"type": "function",
                                 "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
                {"role": "tool", "content": "3 C"}]
    plan = plan_prompt(Conversation.from_dicts(messages), QWEN3, "reply",
                       variables={"tools": [{"type": "function", "function": {"name": "get_weather"}}]})
    assert _texts(plan.prompt, plan.segments, "reasoning") == ["Use the tool."]
    assert _texts(plan.prompt, plan.segments, "tool_call") == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>']
    assert _texts(plan.prompt, plan.segments, "tool") == ["3 C"]
    assert all(s.kind == "scaffold" for s in plan.segments if s.role == "tool_call")  # template's text


def test_thinking_written_in_content_is_reasoning():
    conv = Conversation.from_dicts([{"role": "user", "content": "Hi"},
                                    {"role": "assistant", "content": "<think>hm</think>Hello"}])
    plan = plan_prompt(conv, load_template("chatml"), "as-is")
    assert _texts(plan.prompt, plan.segments, "reasoning") == ["hm"]
    assert _texts(plan.prompt, plan.segments, "assistant") == ["Hello"]


def test_a_prefill_that_opens_thinking_makes_the_generated_text_reasoning():
    wb = Workbench(FakeBackend("Let me see.</think>The answer.<|im_end|>"), load_template("chatml"))
    plan = wb.plan(Conversation.of(("user", "Q?")), "prefill", "<think>")
    gen = wb.generate(plan, SamplingParams(temperature=0, max_tokens=40, eos="stop"))
    by_role = {}
    for t in gen.tokens:
        by_role[t.role] = by_role.get(t.role, "") + t.piece
    assert by_role["reasoning"] == "Let me see."
    assert by_role["assistant"] == "The answer."
    assert _texts(plan.prompt, plan.segments, "template")[-1] == "<think>"


# --- the Must-show on the bundled model -----------------------------------------------------------

@pytest.mark.model
def test_score_json_gives_reasoning_and_answer_their_roles(tmp_path):
    conv = write_messages(tmp_path / "c.json", REASONED)
    data = json.loads(harness("score", "--model", "smollm2", "--template",
                              str(TEMPLATES / "Qwen-Qwen3-0.6B.jinja"), "--messages", str(conv),
                              "--json").stdout)
    pieces = {}
    for t in data["tokens"]:
        pieces[t["role"]] = pieces.get(t["role"], "") + t["piece"]
    assert pieces["reasoning"].strip() == "The user greets me."
    assert pieces["assistant"].strip() == "Hello there!"
    assert {"reasoning", "assistant", "user", "template"} <= set(data["roles"])
    assert data["roles"]["reasoning"]["tokens"] == sum(t["role"] == "reasoning" for t in data["tokens"])


@pytest.mark.model
def test_generated_thinking_on_smollm2_with_a_prefilled_think(smollm2):
    plan = smollm2.plan(Conversation.of(("user", "What is 17 + 25? Think step by step.")), "prefill",
                        "<think>\n")
    gen = smollm2.generate(plan, SamplingParams(seed=1, temperature=0, eos="stop", max_tokens=40))
    roles = [t.role for t in gen.tokens]
    assert roles[0] == "reasoning"
    assert "reasoning" in {s for s in smollm2_summary(gen)}


def smollm2_summary(gen):
    from harness.generation.records import role_summaries

    return role_summaries(gen.tokens)


# --- parsing generated text back into a message -------------------------------------------------

CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}


@pytest.mark.parametrize("message", [
    {"role": "assistant", "reasoning_content": "Check the weather.", "content": "Let me look.",
     "tool_calls": [CALL]},
    {"role": "assistant", "reasoning_content": "Easy.", "content": "Hello there!"},
    {"role": "assistant", "content": "Just an answer."},
])
def test_render_parse_render_round_trip_on_qwen3(message):
    from harness.prompt.response import parse_response

    messages = [{"role": "user", "content": "Hi"}, message]
    rendered = QWEN3.render(messages, add_generation_prompt=False)
    markers = derive_markers(QWEN3)
    blocks = derive_blocks(QWEN3, None, markers.generation_prompt)
    turn = [t for t in TurnParser(markers, blocks=blocks).turns(rendered, None) if t.role == "assistant"][-1]
    parsed = parse_response(rendered[turn.start:turn.end], blocks)
    assert parsed.to_dict() == {**message, "content": message["content"]}
    assert QWEN3.render([messages[0], parsed.to_dict()], add_generation_prompt=False) == rendered


def test_parse_a_generation_that_began_inside_the_thinking_block():
    from harness.prompt.response import parse_response

    parsed = parse_response("Let me think.\n</think>\n\nHi!", in_reasoning=True)
    assert (parsed.reasoning, parsed.content) == ("Let me think.", "Hi!")
    kept = parse_response("no call <tool_call>not json</tool_call>")
    assert kept.content == "no call <tool_call>not json</tool_call>" and "tool_calls" not in kept.extra


def test_repl_insert_and_edit_take_json_messages():
    from harness.chat.session import Session
    from tests.support.replkit import drive

    wb = Workbench(FakeBackend("ok<|im_end|>"), load_template("chatml"))
    session = Session(wb, params=SamplingParams(temperature=0, max_tokens=5))
    drive(session, '/insert 0 user Weather?\r'
                   '/insert 1 {"role": "assistant", "content": null, "tool_calls": [{"type": "function", '
                   '"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}\r'
                   '/insert 2 tool 3 C\r'
                   '/edit 2 {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "4 C"}]}\r')
    messages = session.conversation.to_dicts()
    assert messages[1]["content"] is None and messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "4 C"}]}
