"""Messages as Hugging Face shapes them, rendered through real templates (llama.cpp's
``models/templates``, copied into ``tests/data/templates``) exactly as ``apply_chat_template``
renders them: content parts, ``content: null``, tool calls with string and object arguments, tool
results, ``reasoning_content``/``thinking``, and the ``tools``/``enable_thinking`` variables.

The expected strings come from the reference environment of ``tests/support/hf_reference.py`` (jinja2 set up the
way transformers sets it up, messages passed as they are); a few are also spelled out by hand.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from harness.errors import MessagesError
from harness.prompt.conversation import Conversation, parse_messages
from harness.prompt.templates import load_template
from tests.support.hf_reference import GENERATION_TAG, PLAIN, TRACKING

TEMPLATES = Path(__file__).resolve().parent / "data" / "templates"
QWEN3 = "Qwen-Qwen3-0.6B"
QWEN35 = "Qwen3.5-4B"
FUNCTIONARY = "meetkai-functionary-medium-v3.2"
LLAMA31 = "meta-llama-Llama-3.1-8B-Instruct"
GLM = "GLM-4.6"
GPT_OSS = "openai-gpt-oss-120b"
MISTRAL32 = "Mistral-Small-3.2-24B-Instruct-2506"
R1_DISTILL = "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"
HERMES2 = "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use"


def reference(name: str, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
              variables: dict[str, Any] | None = None) -> str:
    """``apply_chat_template(tokenize=False)``'s render call, messages untouched."""
    source = (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
    kwargs = {"bos_token": "", "eos_token": "", **(variables or {})}  # transformers passes them
    tools, documents = kwargs.pop("tools", None), kwargs.pop("documents", None)
    env = TRACKING if GENERATION_TAG.search(source) else PLAIN
    return env.from_string(source).render(messages=copy.deepcopy(messages), tools=tools,
                                          documents=documents,
                                          add_generation_prompt=add_generation_prompt, **kwargs)


def harness(name: str, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
            variables: dict[str, Any] | None = None) -> str:
    """Through harness's own path: the messages-file loader, then the worker's render."""
    conversation = Conversation.from_dicts(messages)
    template = load_template(str(TEMPLATES / f"{name}.jinja"))
    return template.render(conversation.to_dicts(), add_generation_prompt=add_generation_prompt,
                           variables=variables)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
CALL_OBJ = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}
CALL_STR = {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}
USER = {"role": "user", "content": "Weather in Zürich?"}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call_1", "name": "get_weather",
               "content": '{"temp_c": 3}'}
IMAGE_PARTS = {"role": "user", "content": [
    {"type": "image"}, {"type": "text", "text": "What is in this picture?"},
    {"type": "image", "image": "https://example.com/cat.png"}]}
REASONED = {"role": "assistant", "reasoning_content": "The user greets me.", "content": "Hello!"}

CASES = {
    "qwen3 reasoning_content": (QWEN3, [{"role": "user", "content": "Hi"}, REASONED], False, None),
    "qwen3 think in content": (QWEN3, [{"role": "user", "content": "Hi"},
                                       {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello!"}],
                               False, None),
    "qwen3 tool calls, object arguments": (QWEN3, [USER, {"role": "assistant", "content": "",
                                                          "tool_calls": [CALL_OBJ]}, TOOL_RESULT],
                                           True, {"tools": [WEATHER]}),
    "qwen3 tool calls, string arguments": (QWEN3, [USER, {"role": "assistant", "content": "",
                                                          "tool_calls": [CALL_STR]}, TOOL_RESULT],
                                           True, {"tools": [WEATHER]}),
    "qwen3 enable_thinking false": (QWEN3, [USER], True, {"enable_thinking": False}),
    "qwen3.5 content parts": (QWEN35, [IMAGE_PARTS], True, None),
    "qwen3.5 parts, unknown type": (QWEN35, [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "video"}, {"type": "text", "text": "b"}]}], True, None),
    "qwen3.5 reasoning and tools": (QWEN35, [USER, {"role": "assistant", "content": "",
                                                    "reasoning_content": "Call the tool.",
                                                    "tool_calls": [CALL_OBJ]}, TOOL_RESULT],
                                    True, {"tools": [WEATHER]}),
    "functionary null content with tool_calls": (FUNCTIONARY, [USER, {"role": "assistant", "content": None,
                                                                       "tool_calls": [CALL_STR]},
                                                               TOOL_RESULT], True, {"tools": [WEATHER]}),
    "llama3.1 tool call and ipython result": (LLAMA31, [USER, {"role": "assistant", "content": None,
                                                               "tool_calls": [CALL_OBJ]},
                                                        {"role": "ipython", "content": '{"temp_c": 3}'}],
                                              True, {"tools": [WEATHER]}),
    "glm4.6 tool result and reasoning": (GLM, [USER, {"role": "assistant", "content": "",
                                                      "reasoning_content": "Use the tool.",
                                                      "tool_calls": [CALL_OBJ]}, TOOL_RESULT],
                                         True, {"tools": [WEATHER]}),
    "gpt-oss thinking and tool call": (GPT_OSS, [USER, {"role": "assistant", "thinking": "Need the tool.",
                                                        "content": "", "tool_calls": [CALL_OBJ]},
                                                 TOOL_RESULT], True,
                                       {"tools": [WEATHER], "strftime_now": None}),
    "mistral3.2 image parts and tool call": (MISTRAL32, [IMAGE_PARTS, {"role": "assistant", "content": "",
                                                                       "tool_calls": [{**CALL_OBJ, "id": "abcdefghi"}]},
                                                         {**TOOL_RESULT, "tool_call_id": "abcdefghi"}],
                                             True, {"tools": [WEATHER]}),
    "r1-distill generation prompt opens think": (R1_DISTILL, [USER], True, {"enable_thinking": True}),
    "hermes2 tool call object arguments": (HERMES2, [USER, {"role": "assistant", "content": None,
                                                            "tool_calls": [CALL_OBJ]}, TOOL_RESULT],
                                           True, {"tools": [WEATHER]}),
}


def _variables(variables):
    # gpt-oss reads strftime_now: pin it out of the comparison (both sides see the same date)
    return {k: v for k, v in (variables or {}).items() if k != "strftime_now"} or None


@pytest.mark.parametrize("case", sorted(CASES))
def test_renders_like_apply_chat_template(case):
    name, messages, gen, variables = CASES[case]
    expected = reference(name, messages, add_generation_prompt=gen, variables=_variables(variables))
    assert harness(name, messages, add_generation_prompt=gen, variables=_variables(variables)) == expected


def test_qwen3_reasoning_content_by_hand():
    assert harness(QWEN3, [{"role": "user", "content": "Hi"}, REASONED], add_generation_prompt=False) == (
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nThe user greets me.\n</think>\n\nHello!<|im_end|>\n")


def test_null_content_stays_null(tmp_path):
    """``content: null`` reaches the template as None (templates test ``content is none``)."""
    probe = tmp_path / "probe.jinja"
    probe.write_text("{% for m in messages %}{{ m.content is none }},{{ m.content is string }};"
                     "{% endfor %}", encoding="utf-8")
    messages = [USER, {"role": "assistant", "content": None, "tool_calls": [CALL_STR]}]
    conversation = Conversation.from_dicts(messages)
    assert conversation.messages[1].content is None
    assert load_template(str(probe)).render(conversation.to_dicts(), add_generation_prompt=False) == \
        "False,True;True,False;"


def test_content_parts_by_hand():
    assert harness(QWEN35, [IMAGE_PARTS], add_generation_prompt=True).startswith(
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is in this picture?"
        "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n")


def test_messages_file_takes_hf_shapes():
    text = """
- role: user
  content:
    - {type: image, image: "https://example.com/cat.png"}
    - {type: text, text: 'What is this?'}
- role: assistant
  content: null
  tool_calls:
    - type: function
      function: {name: look, arguments: {detail: high}}
- {role: tool, tool_call_id: c1, name: look, content: a cat}
- {role: assistant, reasoning_content: It is a cat., content: A cat.}
"""
    conversation = parse_messages(text, where="m.yaml")
    assert [m.role for m in conversation] == ["user", "assistant", "tool", "assistant"]
    assert conversation.messages[0].text == "What is this?"
    assert conversation.messages[1].content is None
    assert conversation.messages[3].reasoning == "It is a cat."
    assert conversation.to_dicts()[1]["tool_calls"][0]["function"]["arguments"] == {"detail": "high"}


@pytest.mark.parametrize("bad", [
    [{"role": "user", "content": 3}],
    [{"role": "user", "content": ["text"]}],
    [{"role": "user", "content": [{"type": "text"}]}],
    [{"role": "assistant", "content": "", "tool_calls": "x"}],
    [{"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": "{}"}}]}],
    [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": 3}}]}],
])
def test_malformed_shapes_are_refused_with_a_reason(bad):
    with pytest.raises(MessagesError):
        Conversation.from_dicts(bad)
