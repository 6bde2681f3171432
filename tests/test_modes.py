"""Prompt modes against hand-written expected strings, and segment tiling."""

from __future__ import annotations

import pytest

from harness.errors import ModeError
from harness.prompt.conversation import Conversation
from harness.prompt.modes import plan_prompt
from harness.prompt.templates import load_template

CONV = Conversation.of(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Why?"))
OPEN_ASSISTANT = Conversation.of(("user", "Hi"), ("assistant", "Well, "))

CHATML_BASE = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
               "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n")
GEMMA_BASE = ("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
              "<start_of_turn>user\nWhy?<end_of_turn>\n")
LLAMA3_BASE = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|>")

CASES = {
    "chatml": ({}, CHATML_BASE, "<|im_start|>assistant\n", "<|im_start|>user\n",
               "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nWell, "),
    "gemma": ({"bos_token": "<bos>", "eos_token": "<eos>"}, GEMMA_BASE, "<start_of_turn>model\n",
              "<start_of_turn>user\n", "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nWell, "),
    "llama3": ({"bos_token": "<|begin_of_text|>"}, LLAMA3_BASE, "<|start_header_id|>assistant<|end_header_id|>\n\n",
               "<|start_header_id|>user<|end_header_id|>\n\n",
               "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nWell,"),
}


@pytest.mark.parametrize("name", CASES)
def test_modes_render_expected_strings(name):
    variables, base, assistant_open, user_open, continued = CASES[name]
    template = load_template(name)

    def plan(mode, text="", conv=CONV):
        return plan_prompt(conv, template, mode, text=text, variables=variables)

    assert plan("as-is").prompt == base
    assert plan("reply").prompt == base + assistant_open
    assert plan("prefill", "Sure,").prompt == base + assistant_open + "Sure,"
    assert plan("impersonate").prompt == base + user_open
    assert plan("impersonate", "Actually").prompt == base + user_open + "Actually"
    # continue: the final message is left open; a trailing space survives only where the
    # template kept it (chatml, gemma), as transformers' continue_final_message does (llama3 trims)
    assert plan("continue", conv=OPEN_ASSISTANT).prompt == continued
    assert plan("reply").writer == "assistant" and plan("impersonate").writer == "user"
    assert plan("continue", conv=OPEN_ASSISTANT).writer == "assistant"


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("mode,text", [("as-is", ""), ("reply", ""), ("prefill", "Sure"), ("impersonate", "I"),
                                       ("continue", "")])
def test_segments_tile_the_prompt_and_label_content(name, mode, text):
    variables = CASES[name][0]
    plan = plan_prompt(CONV, load_template(name), mode, text=text, variables=variables)
    assert plan.segments[0].start == 0 and plan.segments[-1].end == len(plan.prompt)
    for a, b in zip(plan.segments, plan.segments[1:], strict=False):
        assert a.end == b.start
    content = {(s.role, plan.prompt[s.start:s.end]) for s in plan.segments if s.kind == "content"}
    assert ("user", "Hi") in content and ("assistant", "Hello!") in content
    if name != "gemma":
        assert ("system", "Be brief.") in content
    if mode == "prefill":
        assert ("assistant", "Sure") in content
    if mode == "impersonate":
        assert ("user", "I") in content
    scaffold = "".join(plan.prompt[s.start:s.end] for s in plan.segments if s.kind == "scaffold")
    assert "Hello!" not in scaffold and "Why?" not in scaffold


def test_llama3_trims_content_and_segments_still_find_it():
    conv = Conversation.of(("user", "  padded  "))
    plan = plan_prompt(conv, load_template("llama3"), "reply", variables={"bos_token": "<|begin_of_text|>"})
    assert "\n\npadded<|eot_id|>" in plan.prompt
    users = [plan.prompt[s.start:s.end] for s in plan.segments if s.role == "user"]
    assert users == ["padded"]


def test_impersonate_on_strictly_alternating_template_is_a_clear_error():
    conv = Conversation.of(("user", "Hi"))
    with pytest.raises(ModeError, match="alternate"):
        plan_prompt(conv, load_template("mistral"), "impersonate", variables={"bos_token": "<s>", "eos_token": "</s>"})


def test_continue_needs_a_final_message_and_opens_an_empty_one():
    with pytest.raises(ModeError):
        plan_prompt(Conversation(), load_template("chatml"), "continue")
    plan = plan_prompt(Conversation.of(("user", "Hi"), ("assistant", "")), load_template("chatml"), "continue")
    assert plan.prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert plan.writer == "assistant"


def test_continue_cuts_at_the_final_message_not_a_later_copy_of_it():
    source = ("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
              "[docs] Penguins are birds.")
    conv = Conversation.of(("user", "Hi"), ("assistant", "Penguins are"))
    from harness.prompt.templates import ChatTemplate

    plan = plan_prompt(conv, ChatTemplate("t", source, "test"), "continue")
    assert plan.prompt == "[user] Hi\n[assistant] Penguins are"


def test_unknown_mode():
    with pytest.raises(ModeError, match="unknown mode"):
        plan_prompt(CONV, load_template("chatml"), "sideways")
