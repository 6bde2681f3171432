"""Parity with Hugging Face transformers' ``apply_chat_template(tokenize=False)``.

transformers cannot be installed here, so parity is shown two ways for every case:

1. the exact expected string, derived by hand from the template's logic and Jinja's whitespace
   rules (``trim_blocks`` eats the first newline after a block or comment tag, ``lstrip_blocks``
   eats the indentation before a block tag on its line, ``-`` markers eat all whitespace on
   their side), is what harness renders;
2. a reference setup built the way transformers builds it -- ``ImmutableSandboxedEnvironment(
   trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])`` with its ``tojson``,
   ``raise_exception`` and ``strftime_now``, rendered with ``messages``, ``tools`` (``None`` when
   not given), ``documents`` (likewise), ``add_generation_prompt`` and the extra kwargs -- renders
   the same string. Templates with ``{% generation %}`` get the reference plus a copy of
   transformers' ``AssistantTracker`` (a ``CallBlock`` that returns its body), inactive as it is
   for ``tokenize=False``.

``continue`` mode is checked against transformers' current ``continue_final_message`` algorithm
(append ``"CONTINUE_FINAL_MESSAGE_TAG "`` to the final content, render without a generation
prompt, cut at the tag; ``rstrip`` when the template ate the tag's trailing space).

Templates live in ``tests/data/parity/``; each was written for this test in the *structure* of a
published format named in its first line. Where harness deviates from transformers the harness
test is ``xfail(strict=True)`` and the reference test still pins transformers' output.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import pytest
from jinja2.sandbox import SecurityError

from harness.errors import ModeError, TemplateError
from harness.prompt.conversation import Conversation
from harness.prompt.modes import plan_prompt
from harness.prompt.templates import load_template
from tests.support.hf_reference import GENERATION_TAG, PLAIN, TRACKING

DATA = Path(__file__).resolve().parent / "data" / "parity"




def source_of(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def reference_render(name: str, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                     variables: dict[str, Any] | None = None) -> str:
    """``compiled_template.render(messages=, tools=, documents=, add_generation_prompt=, **kwargs)``
    exactly as transformers calls it: tools and documents are always passed, None when absent."""
    source = source_of(name)
    kwargs = dict(variables or {})
    tools = kwargs.pop("tools", None)
    documents = kwargs.pop("documents", None)
    env = TRACKING if GENERATION_TAG.search(source) else PLAIN
    return env.from_string(source).render(messages=messages, tools=tools, documents=documents,
                                          add_generation_prompt=add_generation_prompt, **kwargs)


def reference_continue(name: str, messages: list[dict[str, Any]],
                       variables: dict[str, Any] | None = None) -> str:
    """transformers' ``continue_final_message=True`` (render_jinja_template, sentinel version)."""
    tag = "CONTINUE_FINAL_MESSAGE_TAG "
    chat = copy.deepcopy(messages)
    final_message = chat[-1]["content"]
    chat[-1]["content"] = final_message + tag
    rendered = reference_render(name, chat, add_generation_prompt=False, variables=variables)
    if final_message.strip() not in rendered or tag.strip() not in rendered:
        raise ValueError("continue_final_message is set but the final message does not appear")
    tag_loc = rendered.rindex(tag.strip())
    if rendered[tag_loc: tag_loc + len(tag)] == tag:
        return rendered[:tag_loc]
    return rendered[:tag_loc].rstrip()


def harness_render(name: str, messages: list[dict[str, Any]], *, add_generation_prompt: bool,
                   variables: dict[str, Any] | None = None) -> str:
    template = load_template(str(DATA / name))
    return template.render(messages, add_generation_prompt=add_generation_prompt,
                           variables=variables)


def harness_continue(name: str, messages: list[dict[str, Any]],
                     variables: dict[str, Any] | None = None) -> str:
    template = load_template(str(DATA / name))
    return plan_prompt(Conversation.from_dicts(messages), template, "continue",
                       variables=variables).prompt


def line_of(name: str, needle: str) -> int:
    lines = source_of(name).splitlines()
    hits = [i for i, line in enumerate(lines, start=1) if needle in line]
    assert len(hits) == 1, (name, needle, hits)
    return hits[0]


def msg(role: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **extra}


# --- shared data: tools and documents (JSON-schema dicts, as transformers takes them) ------------

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather — °C, <city> & region",
    "parameters": {"type": "object",
                   "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}},
                   "required": ["city"]}}}
# tojson keeps key order, non-ASCII and <&> as they are (Jinja's own tojson would sort the keys
# and write \u2014, \u00b0, \u003c, \u0026 ...)
WEATHER_JSON = ('{"type": "function", "function": {"name": "get_weather", "description": '
                '"Current weather — °C, <city> & region", "parameters": {"type": "object", '
                '"properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"}}, '
                '"required": ["city"]}}}')

TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Current time in a zone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
TIME_JSON_INDENT4 = """{
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a zone",
        "parameters": {
            "type": "object",
            "properties": {
                "tz": {
                    "type": "string"
                }
            }
        }
    }
}"""

ADD_TOOL = {"type": "function", "function": {
    "name": "add", "description": "Add two integers",
    "parameters": {"type": "object", "properties": {"b": {"type": "integer"}, "a": {"type": "integer"}},
                   "required": ["a", "b"]}}}
ADD_JSON = ('{"type": "function", "function": {"name": "add", "description": "Add two integers", '
            '"parameters": {"type": "object", "properties": {"b": {"type": "integer"}, '
            '"a": {"type": "integer"}}, "required": ["a", "b"]}}}')
NEG_TOOL = {"type": "function", "function": {
    "name": "négation", "description": "Negate <x>",
    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
TOOLS_JSON_INDENT2 = """[
  {
    "type": "function",
    "function": {
      "name": "add",
      "description": "Add two integers",
      "parameters": {
        "type": "object",
        "properties": {
          "b": {
            "type": "integer"
          },
          "a": {
            "type": "integer"
          }
        },
        "required": [
          "a",
          "b"
        ]
      }
    }
  },
  {
    "type": "function",
    "function": {
      "name": "négation",
      "description": "Negate <x>",
      "parameters": {
        "type": "object",
        "properties": {
          "x": {
            "type": "integer"
          }
        }
      }
    }
  }
]"""

DOCUMENTS = [{"title": "Tall penguins", "text": "Emperor penguins are the tallest."},
             {"title": "Penguin habitats", "text": "Emperor penguins only live in Antarctica."}]


def qwen_tools_system(system: str) -> str:
    return ("<|im_start|>system\n" + system + "\n\n# Tools\n\nFunction signatures, one per line, "
            "inside <tools></tools>:\n<tools>\n" + WEATHER_JSON + "\n</tools>\n\nTo call a function, "
            'answer with <tool_call></tool_call> around {"name": <function-name>, "arguments": '
            "<args-json-object>}.<|im_end|>\n")


CHATML_DEFAULT = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
COMMAND_R_PREAMBLE = ("<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|># Preamble\nYou are a grounded "
                      "assistant. Answer from the documents.<|END_OF_TURN_TOKEN|>")
LLAMA_BOS = {"bos_token": "<|begin_of_text|>"}
LLAMA_SYSTEM_HEAD = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                     "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n")
LLAMA_CALL_FORMAT = '{"name": function name, "parameters": dictionary of arguments}'
DS = {"bos_token": "<｜begin▁of▁sentence｜>"}


# --- render cases --------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    template: str
    messages: list[dict[str, Any]]
    expected: str
    add_generation_prompt: bool = False
    variables: dict[str, Any] = field(default_factory=dict)


RENDER_CASES = [
    # ChatML, no '-' markers: trim_blocks/lstrip_blocks only; default system turn injected
    Case("chatml-default-system", "chatml_default_system.jinja", [msg("user", "Hi")],
         CHATML_DEFAULT + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", True),
    Case("chatml-own-system", "chatml_default_system.jinja",
         [msg("system", "Be terse."), msg("user", "Hi"), msg("assistant", "Hello.")],
         "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
         "<|im_start|>assistant\nHello.<|im_end|>\n",
         variables={"default_system": "unused"}),
    Case("chatml-custom-variable", "chatml_default_system.jinja", [msg("user", "Hi")],
         "<|im_start|>system\nDu bist hilfreich.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
         variables={"default_system": "Du bist hilfreich."}),
    # plain-text sections, loop filter, eos_token from the kwargs
    Case("alpaca-sections", "alpaca_plain.jinja",
         [msg("system", "You are a poet."), msg("user", "Write a haiku."),
          msg("assistant", "Moss on the stone"), msg("user", "Another.")],
         "You are a poet.\n\n### Instruction:\nWrite a haiku.\n\n### Response:\nMoss on the stone</s>\n\n"
         "### Instruction:\nAnother.\n\n### Response:\n",
         True, {"eos_token": "</s>"}),
    # Qwen2.5: tools in the system turn, tool calls, grouped tool results
    Case("qwen25-tools-first-turn", "qwen25_tools.jinja", [msg("user", "Weather in Zürich?")],
         qwen_tools_system("You are a helpful assistant.")
         + "<|im_start|>user\nWeather in Zürich?<|im_end|>\n<|im_start|>assistant\n",
         True, {"tools": [WEATHER_TOOL]}),
    Case("qwen25-tool-round-trip", "qwen25_tools.jinja",
         [msg("system", "You are WeatherBot."), msg("user", "Weather in Zürich and Bern?"),
          msg("assistant", "", tool_calls=[
              {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
              {"name": "get_weather", "arguments": {"city": "Bern"}}]),
          msg("tool", "21 °C, sunny"), msg("tool", "18 °C, rain")],
         qwen_tools_system("You are WeatherBot.")
         + "<|im_start|>user\nWeather in Zürich and Bern?<|im_end|>\n<|im_start|>assistant\n"
         '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Bern"}}\n</tool_call><|im_end|>\n'
         "<|im_start|>user\n<tool_response>\n21 °C, sunny\n</tool_response>\n<tool_response>\n"
         "18 °C, rain\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
         True, {"tools": [WEATHER_TOOL]}),
    Case("qwen25-no-tools", "qwen25_tools.jinja", [msg("system", "Be brief."), msg("user", "Hi")],
         "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"),
    # Qwen3: enable_thinking, reasoning split off content, namespace over reversed messages
    Case("qwen3-thinking-off", "qwen3_thinking.jinja",
         [msg("user", "What is 2+2?"), msg("assistant", "<think>\nadd them\n</think>\n\n4"),
          msg("user", "And 3+3?")],
         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
         "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
         True, {"enable_thinking": False}),
    Case("qwen3-thinking-default", "qwen3_thinking.jinja",
         [msg("user", "What is 2+2?"), msg("assistant", "<think>\nadd them\n</think>\n\n4"),
          msg("user", "And 3+3?")],
         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
         "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n", True),
    Case("qwen3-reasoning-kept-after-last-query", "qwen3_thinking.jinja",
         [msg("system", "Reason briefly."), msg("user", "Capital of France?"),
          msg("assistant", "<think>\nrecall\n</think>\n\nParis.")],
         "<|im_start|>system\nReason briefly.<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n"
         "<|im_start|>assistant\n<think>\nrecall\n</think>\n\nParis.<|im_end|>\n",
         variables={"enable_thinking": True}),
    Case("qwen3-tool-response-is-not-a-query", "qwen3_thinking.jinja",
         [msg("user", "Weather?"), msg("assistant", "Checking.", reasoning_content="need tool"),
          msg("user", "<tool_response>\nsunny\n</tool_response>"), msg("assistant", "It is sunny.")],
         "<|im_start|>user\nWeather?<|im_end|>\n"
         "<|im_start|>assistant\n<think>\nneed tool\n</think>\n\nChecking.<|im_end|>\n"
         "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
         "<|im_start|>assistant\n<think>\n\n</think>\n\nIt is sunny.<|im_end|>\n"),
    # Command-R: documents after the history, custom citation_mode variable
    Case("command-r-documents", "command_r_rag.jinja", [msg("user", "What's the tallest penguin? ")],
         COMMAND_R_PREAMBLE + "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>What's the tallest penguin?"
         "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><results>\nDocument: 0\n"
         "title: Tall penguins\ntext: Emperor penguins are the tallest.\n\nDocument: 1\n"
         "title: Penguin habitats\ntext: Emperor penguins only live in Antarctica.\n</results>"
         "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Cite the documents you use as "
         "[n].<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
         True, {"bos_token": "<BOS_TOKEN>", "documents": DOCUMENTS}),
    Case("command-r-citation-mode", "command_r_rag.jinja",
         [msg("system", "Answer in one line."), msg("user", "Tallest?"),
          msg("assistant", "Emperor penguins [0]."), msg("user", "Where do they live?")],
         "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|># Preamble\nAnswer in one line."
         "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Tallest?<|END_OF_TURN_TOKEN|>"
         "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Emperor penguins [0].<|END_OF_TURN_TOKEN|>"
         "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Where do they live?<|END_OF_TURN_TOKEN|>"
         "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><results>\nDocument: 0\ntitle: Tall penguins\n"
         "text: Emperor penguins are the tallest.\n</results><|END_OF_TURN_TOKEN|>"
         "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Answer without citations.<|END_OF_TURN_TOKEN|>",
         variables={"bos_token": "<BOS_TOKEN>", "documents": DOCUMENTS[:1], "citation_mode": "fast"}),
    Case("command-r-no-documents", "command_r_rag.jinja", [msg("user", "Hi")],
         COMMAND_R_PREAMBLE + "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
         "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
         True, {"bos_token": "<BOS_TOKEN>"}),
    # Llama 3.1: tools in the first user turn, tojson(indent=4), trimmed contents
    Case("llama31-tools-in-user-turn", "llama31_tools.jinja",
         [msg("system", "Be exact. "), msg("user", " What time is it in Oslo? ")],
         LLAMA_SYSTEM_HEAD + "Be exact.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
         "Given the following functions, reply with a function call as " + LLAMA_CALL_FORMAT + ".\n\n"
         + TIME_JSON_INDENT4 + "\n\nWhat time is it in Oslo?<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n",
         True, {**LLAMA_BOS, "tools": [TIME_TOOL], "date_string": "01 Jan 2025"}),
    Case("llama31-custom-tools-in-system-turn", "llama31_tools.jinja",
         [msg("user", "Time in Oslo?"),
          msg("assistant", "", tool_calls=[
              {"type": "function", "function": {"name": "get_time", "arguments": {"tz": "Europe/Oslo"}}}]),
          msg("tool", {"time": "14:05", "tz": "CET"})],
         LLAMA_SYSTEM_HEAD + "You may call these functions. Reply with " + LLAMA_CALL_FORMAT + ".\n\n"
         + TIME_JSON_INDENT4 + "\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nTime in Oslo?"
         "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
         '{"name": "get_time", "parameters": {"tz": "Europe/Oslo"}}<|eot_id|>'
         '<|start_header_id|>ipython<|end_header_id|>\n\n{"time": "14:05", "tz": "CET"}<|eot_id|>'
         "<|start_header_id|>assistant<|end_header_id|>\n\n",
         True, {**LLAMA_BOS, "custom_tools": [TIME_TOOL], "tools_in_user_message": False,
                "date_string": "01 Jan 2025"}),
    # Mistral v0.1: [INST] pairs, system folded into the first user turn
    Case("mistral-inst-pairs", "mistral_alternation.jinja",
         [msg("system", "Answer in French."), msg("user", "Hello"), msg("assistant", "Bonjour"),
          msg("user", "Thanks")],
         "<s>[INST] Answer in French.\n\nHello [/INST] Bonjour</s>[INST] Thanks [/INST]",
         True, {"bos_token": "<s>", "eos_token": "</s>"}),
    Case("mistral-v3-available-tools", "mistral_v3_tools_not_none.jinja",
         [msg("user", "Hi"), msg("assistant", "Hello "), msg("user", "Add 2 and 3")],
         "<s>[INST] Hi[/INST] Hello</s>[AVAILABLE_TOOLS] [" + ADD_JSON + "][/AVAILABLE_TOOLS]"
         "[INST] Add 2 and 3[/INST]",
         variables={"bos_token": "<s>", "eos_token": "</s>", "tools": [ADD_TOOL]}),
    # Gemma: '-%}' markers, trim, loop.first prefix, generation prompt under loop.last
    Case("gemma-turns-with-prompt", "gemma_turns.jinja",
         [msg("system", "Be brief."), msg("user", " Hi "), msg("assistant", "Hello!\n"), msg("user", "Why?")],
         "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
         "<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n",
         True, {"bos_token": "<bos>"}),
    Case("gemma-turns-without-prompt", "gemma_turns.jinja",
         [msg("user", "Hi"), msg("assistant", "Hello!")],
         "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n",
         variables={"bos_token": "<bos>"}),
    # {% generation %} blocks render as their body
    Case("phi3-generation-blocks", "phi3_generation.jinja",
         [msg("system", "Be kind."), msg("user", "Hi"), msg("assistant", "Hello")],
         "<|system|>\nBe kind.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n<|assistant|>\n",
         True),
    Case("smollm3-generation-with-set", "smollm3_generation.jinja",
         [msg("user", "Hi"), msg("assistant", " Hello ")],
         "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>assistant\n",
         True),
    # namespace() carrying state across loops
    Case("deepseek-namespace-systems-and-tools", "deepseek_namespace.jinja",
         [msg("system", "Be brief."), msg("user", "Q1"), msg("system", "Use metric units."),
          msg("assistant", "A1"), msg("tool", "T1"), msg("tool", "T2"), msg("assistant", "A2"),
          msg("user", "Q2")],
         "<｜begin▁of▁sentence｜>Be brief.\n\nUse metric units.<｜User｜>Q1<｜Assistant｜>A1<｜end▁of▁sentence｜>"
         "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>T1<｜tool▁output▁end｜><｜tool▁output▁begin｜>T2"
         "<｜tool▁output▁end｜><｜tool▁outputs▁end｜><｜Assistant｜>A2<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜>",
         True, DS),
    Case("deepseek-namespace-open-tool-block", "deepseek_namespace.jinja",
         [msg("user", "Q"), msg("assistant", "calling"), msg("tool", "T")],
         "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜>calling<｜end▁of▁sentence｜><｜tool▁outputs▁begin｜>"
         "<｜tool▁output▁begin｜>T<｜tool▁output▁end｜><｜tool▁outputs▁end｜>", False, DS),
    # tojson(indent=2), tojson(separators=...), tojson(sort_keys=true), dict literal | tojson
    Case("hermes-tojson-options", "hermes_tojson.jinja",
         [msg("user", "What is 2+3, negated?"),
          msg("assistant", "", tool_calls=[
              {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
              {"type": "function", "function": {"name": "négation", "arguments": {"x": 5}}}]),
          msg("tool", "5"), msg("tool", "-5")],
         "<|im_start|>system\nYou are a function calling AI model. Signatures:\n<tools>\n"
         + TOOLS_JSON_INDENT2 + '\n</tools>\nCompact form: ["add","négation"]\n'
         'Arguments schema (sorted): {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, '
         '"required": ["a", "b"], "type": "object"}<|im_end|>\n'
         "<|im_start|>user\nWhat is 2+3, negated?<|im_end|>\n<|im_start|>assistant\n"
         '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>\n'
         '<tool_call>\n{"name": "négation", "arguments": {"x": 5}}\n</tool_call><|im_end|>\n'
         "<|im_start|>tool\n<tool_response>\n5\n</tool_response><|im_end|>\n"
         "<|im_start|>tool\n<tool_response>\n-5\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
         True, {"tools": [ADD_TOOL, NEG_TOOL]}),
    Case("hermes3-tools-given", "hermes3_tools_is_defined.jinja", [msg("user", "Hi")],
         "<|im_start|>user\nHi\n\nTools available: <tools> [" + ADD_JSON + "] </tools><|im_end|>\n"
         "<|im_start|>assistant\n", True, {"tools": [ADD_TOOL]}),
    # loop controls: {% break %} / {% continue %}, and loop.last on a skipped final message
    Case("zephyr-latest-system-only", "zephyr_loopcontrols.jinja",
         [msg("system", "Old rules."), msg("user", "Hi"), msg("system", "New rules."),
          msg("assistant", "Ok"), msg("user", "Go")],
         "<|system|>\nNew rules.</s>\n<|user|>\nHi</s>\n<|assistant|>\nOk</s>\n<|user|>\nGo</s>\n"
         "<|assistant|>\n", True, {"eos_token": "</s>"}),
    Case("zephyr-continue-skips-loop-last", "zephyr_loopcontrols.jinja",
         [msg("user", "Hi"), msg("system", "Late note.")],
         "<|system|>\nLate note.</s>\n<|user|>\nHi</s>\n", True, {"eos_token": "</s>"}),
]

# transformers always passes tools=None and documents=None to render(); harness once left them
# undefined, so `tools is defined` / `tools is not none` tests differed. Kept as regressions.
DEVIATING_RENDER_CASES = [
    # transformers: `tools is defined` is true (tools=None), so the preamble renders with `null`
    Case("hermes3-no-tools", "hermes3_tools_is_defined.jinja", [msg("user", "Hi")],
         "<|im_start|>user\nHi\n\nTools available: <tools> null </tools><|im_end|>\n<|im_start|>assistant\n",
         True),
    # transformers: `tools is not none` is false; harness: Undefined is not none, so an empty
    # "[AVAILABLE_TOOLS] [][/AVAILABLE_TOOLS]" block appears
    Case("mistral-v3-no-tools", "mistral_v3_tools_not_none.jinja",
         [msg("user", "Hi"), msg("assistant", "Hello "), msg("user", "Add 2 and 3")],
         "<s>[INST] Hi[/INST] Hello</s>[INST] Add 2 and 3[/INST]",
         variables={"bos_token": "<s>", "eos_token": "</s>"}),
]


def _ids(case: Case) -> str:
    return case.id


@pytest.mark.parametrize("case", RENDER_CASES + DEVIATING_RENDER_CASES, ids=_ids)
def test_reference_setup_renders_the_hand_derived_string(case):
    """The hand derivation agrees with jinja2 configured as transformers configures it."""
    assert reference_render(case.template, case.messages, add_generation_prompt=case.add_generation_prompt,
                            variables=case.variables) == case.expected


@pytest.mark.parametrize("case", RENDER_CASES + DEVIATING_RENDER_CASES, ids=_ids)
def test_harness_renders_the_hand_derived_string(case):
    messages = copy.deepcopy(case.messages)
    got = harness_render(case.template, messages, add_generation_prompt=case.add_generation_prompt,
                         variables=case.variables)
    assert got == case.expected
    assert messages == case.messages  # rendering never touches the caller's messages


def test_plain_reference_cannot_parse_generation_blocks():
    """Why generation templates are compared against the tracker copy, not the plain setup."""
    with pytest.raises(jinja2.TemplateSyntaxError):
        PLAIN.from_string(source_of("phi3_generation.jinja"))


def test_strftime_now_dates_the_system_header():
    def expected(day: str) -> str:
        return ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                f"December 2023\nToday Date: {day}\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
                "\n\nHi<|eot_id|>")

    before = datetime.now().strftime("%d %b %Y")
    got = harness_render("llama31_tools.jinja", [msg("user", "Hi")], add_generation_prompt=False,
                         variables=LLAMA_BOS)
    ref = reference_render("llama31_tools.jinja", [msg("user", "Hi")], add_generation_prompt=False,
                           variables=LLAMA_BOS)
    after = datetime.now().strftime("%d %b %Y")
    assert got in {expected(before), expected(after)}
    assert ref in {expected(before), expected(after)}


# --- raise_exception and the immutable sandbox ---------------------------------------------------

ERROR_CASES = [
    ("mistral_alternation.jinja", [msg("user", "a"), msg("user", "b")], {},
     "Conversation roles must alternate user/assistant/user/assistant/...", "raise_exception('Conversation"),
    ("mistral_alternation.jinja", [msg("user", "a"), msg("tool", "b")], {},
     "Only user and assistant roles are supported!", "raise_exception('Only user"),
    ("gemma_turns.jinja", [msg("assistant", "a")], {},
     "Conversation roles must alternate user/assistant/user/assistant/...", "raise_exception("),
    ("command_r_rag.jinja", [msg("user", "a"), msg("user", "b")], {},
     "Conversation roles must alternate user/assistant/user/assistant/...", "raise_exception("),
    ("llama31_tools.jinja", [msg("system", "x")], {"tools": [TIME_TOOL]},
     "Tools go in the first user message, but there is no user message.", "raise_exception('Tools go"),
    ("llama31_tools.jinja", [msg("user", "a"), msg("narrator", "b")], {},
     "Unsupported role: narrator", "raise_exception('Unsupported role: '"),
    ("llama31_tools.jinja",
     [msg("user", "a"), msg("assistant", "", tool_calls=[{"function": {"name": "f", "arguments": {}}}] * 2)],
     {}, "This model supports a single tool call per turn.", "raise_exception('This model"),
]


@pytest.mark.parametrize("name,messages,variables,message,needle", ERROR_CASES,
                         ids=[f"{c[0].split('.')[0]}-{i}" for i, c in enumerate(ERROR_CASES)])
def test_raise_exception_fails_the_render_with_message_and_line(name, messages, variables, message, needle):
    with pytest.raises(jinja2.TemplateError) as ref:
        reference_render(name, messages, add_generation_prompt=True, variables=variables)
    assert str(ref.value) == message

    with pytest.raises(TemplateError) as info:
        harness_render(name, messages, add_generation_prompt=True, variables=variables)
    where = f"{name}:{line_of(name, needle)}"
    assert info.value.where == where
    assert message in str(info.value) and where in str(info.value)


@pytest.mark.parametrize("name,needle", [("sandbox_append.jinja", "messages.append("),
                                         ("sandbox_update.jinja", "].update(")])
def test_immutable_sandbox_refuses_in_place_mutation(name, needle):
    messages = [msg("system", "Be brief."), msg("user", "Hi")]
    with pytest.raises(SecurityError):
        reference_render(name, copy.deepcopy(messages), add_generation_prompt=False)

    passed = copy.deepcopy(messages)
    with pytest.raises(TemplateError) as info:
        harness_render(name, passed, add_generation_prompt=False)
    assert info.value.where == f"{name}:{line_of(name, needle)}"
    assert "sandbox" in str(info.value)
    assert passed == messages


# --- continue mode == continue_final_message -----------------------------------------------------

@dataclass
class ContinueCase:
    id: str
    template: str
    messages: list[dict[str, Any]]
    expected: str
    variables: dict[str, Any] = field(default_factory=dict)


CONTINUE_CASES = [
    ContinueCase("chatml-keeps-trailing-space", "chatml_default_system.jinja",
                 [msg("user", "Hi"), msg("assistant", "Well, ")],
                 CHATML_DEFAULT + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nWell, "),
    ContinueCase("alpaca-before-eos", "alpaca_plain.jinja",
                 [msg("user", "Write a haiku."), msg("assistant", "Moss on ")],
                 "### Instruction:\nWrite a haiku.\n\n### Response:\nMoss on ", {"eos_token": "</s>"}),
    ContinueCase("llama31-trimmed-content", "llama31_tools.jinja",
                 [msg("user", "Hi"), msg("assistant", "Sure, ")],
                 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                 "December 2023\nToday Date: 01 Jan 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>"
                 "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSure,",
                 {**LLAMA_BOS, "date_string": "01 Jan 2025"}),
    ContinueCase("gemma-trimmed-both-sides", "gemma_turns.jinja",
                 [msg("user", "Translate: chat"), msg("assistant", " Le chat ")],
                 "<bos><start_of_turn>user\nTranslate: chat<end_of_turn>\n<start_of_turn>model\nLe chat",
                 {"bos_token": "<bos>"}),
    ContinueCase("gemma-final-user-message", "gemma_turns.jinja", [msg("user", "Translate: ch")],
                 "<bos><start_of_turn>user\nTranslate: ch", {"bos_token": "<bos>"}),
    ContinueCase("mistral-final-user-message", "mistral_alternation.jinja", [msg("user", "Tell me a joke")],
                 "<s>[INST] Tell me a joke", {"bos_token": "<s>", "eos_token": "</s>"}),
    ContinueCase("qwen3-empty-think-injected", "qwen3_thinking.jinja",
                 [msg("user", "Capital of France?"), msg("assistant", "Paris is")],
                 "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>"
                 "\n\nParis is", {"enable_thinking": False}),
    ContinueCase("qwen25-with-tools", "qwen25_tools.jinja",
                 [msg("user", "Weather in Zürich?"), msg("assistant", "Let me check")],
                 qwen_tools_system("You are a helpful assistant.")
                 + "<|im_start|>user\nWeather in Zürich?<|im_end|>\n<|im_start|>assistant\nLet me check",
                 {"tools": [WEATHER_TOOL]}),
    ContinueCase("smollm3-inside-generation-block", "smollm3_generation.jinja",
                 [msg("user", "Hi"), msg("assistant", "Hel")],
                 "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHel"),
    ContinueCase("command-r-no-documents", "command_r_rag.jinja",
                 [msg("user", "Hi"), msg("assistant", "Hello, I")],
                 COMMAND_R_PREAMBLE + "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|>"
                 "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hello, I", {"bos_token": "<BOS_TOKEN>"}),
]

# Cases where harness once deviated (it cut at the last occurrence of the content, and refused an
# empty final message); it now follows transformers' tag-based cut. Kept as regressions.
DEVIATING_CONTINUE_CASES = [
    (ContinueCase("command-r-content-repeated-after-final-message", "command_r_rag.jinja",
                  [msg("user", "What's the tallest penguin?"), msg("assistant", "Emperor penguins are")],
                  COMMAND_R_PREAMBLE + "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>What's the tallest penguin?"
                  "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Emperor penguins are",
                  {"bos_token": "<BOS_TOKEN>", "documents": DOCUMENTS}),
     AssertionError,
     "harness cuts at the LAST occurrence of the final content in the rendering (rindex); the "
     "documents block rendered after the history contains 'Emperor penguins are', so the prompt "
     "runs on into the documents. transformers cuts at a sentinel appended to the final message"),
    (ContinueCase("chatml-empty-final-message", "chatml_default_system.jinja",
                  [msg("user", "Hi"), msg("assistant", "")],
                  CHATML_DEFAULT + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
     ModeError,
     "harness refuses to continue an empty final message (ModeError); transformers renders it "
     "with the sentinel and returns the open, empty turn"),
]


def _cont_ids(case: ContinueCase) -> str:
    return case.id


@pytest.mark.parametrize("case", CONTINUE_CASES + [c for c, _, _ in DEVIATING_CONTINUE_CASES], ids=_cont_ids)
def test_reference_continue_final_message_gives_the_hand_derived_prompt(case):
    assert reference_continue(case.template, case.messages, case.variables) == case.expected


@pytest.mark.parametrize("case", CONTINUE_CASES + [c for c, _, _ in DEVIATING_CONTINUE_CASES], ids=_cont_ids)
def test_harness_continue_mode_gives_the_hand_derived_prompt(case):
    assert harness_continue(case.template, case.messages, case.variables) == case.expected
