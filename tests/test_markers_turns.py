"""Turn markers derived from templates, and parsing of run-past-EOS text into turns."""

from __future__ import annotations

import pytest

from harness.prompt.markers import derive_markers
from harness.prompt.templates import ChatTemplate, list_library, load_template
from harness.prompt.turns import TurnParser, writer_turn

EXPECTED = {
    "chatml": ("<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>\n"),
    "gemma": ("<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>model\n", "<end_of_turn>\n"),
    "llama3": ("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>",
               "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    "mistral": ("[INST] ", " [/INST]", "", "</s>"),
    "phi3": ("<|user|>\n", "<|end|>\n", "<|assistant|>\n", "<|end|>\n"),
    "alpaca": ("### Instruction:\n", "\n\n", "### Response:\n", "\n\n"),
    "raw": ("User: ", "\n\n", "Assistant: ", "\n\n"),
}
VARS = {"bos_token": "<s>", "eos_token": "</s>"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_markers_are_derived_from_each_template(name):
    markers = derive_markers(load_template(name), VARS)
    user_open, user_close, assistant_open, assistant_close = EXPECTED[name]
    assert markers.opens["user"] == user_open
    assert markers.closes["user"] == user_close
    assert markers.opens["assistant"] == assistant_open
    assert markers.closes["assistant"] == assistant_close


def test_every_library_template_has_derivable_markers():
    assert set(EXPECTED) <= set(list_library())
    for name in list_library():
        derive_markers(load_template(name), VARS)


def test_markers_of_an_unseen_template_come_from_rendering_not_a_table():
    source = ("{% for m in messages %}<<{{ m.role | upper }}>>{{ m.content }}<</{{ m.role | upper }}>>"
              "{% endfor %}{% if add_generation_prompt %}<<ASSISTANT>>{% endif %}")
    markers = derive_markers(ChatTemplate("odd", source, "test"))
    assert markers.opens == {"user": "<<USER>>", "assistant": "<<ASSISTANT>>", "system": "<<SYSTEM>>"}
    assert markers.closes["assistant"] == "<</ASSISTANT>>"
    assert markers.generation_prompt == "<<ASSISTANT>>"


def test_bos_written_by_template_is_not_part_of_system_open():
    source = ("{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
              "{% endfor %}")
    markers = derive_markers(ChatTemplate("bos-chatml", source, "t"), {"bos_token": "<|im_start|>"})
    assert markers.opens["system"] == "<|im_start|>system\n"


def test_gemma_has_no_system_turn():
    assert derive_markers(load_template("gemma"), VARS).system_folded


SMOL_PAST_EOS = ("Hello there!<|im_end|>\n<|im_end|><|im_start|>system\n<|im_end|>\n<|im_start|>user\n"
                 "Write a poem.<|im_end|>\n<|im_start|>assistant\nRoses")


def _roles(spans, text):
    return [(s.role, text[s.start:s.end]) for s in spans]


def test_parser_handles_repeated_and_empty_turns_past_eos():
    parser = TurnParser(derive_markers(load_template("chatml")))
    spans = parser.parse(SMOL_PAST_EOS, "assistant")
    content = [(r, t) for r, t in _roles(spans, SMOL_PAST_EOS) if r != "template"]
    assert content == [("assistant", "Hello there!"), ("user", "Write a poem."), ("assistant", "Roses")]
    assert "".join(SMOL_PAST_EOS[s.start:s.end] for s in spans) == SMOL_PAST_EOS
    assert parser.role_at_end(SMOL_PAST_EOS, "assistant") == "assistant"
    assert parser.role_at_end("Hi<|im_end|>\n", "assistant") == "template"


def test_writer_turn_stops_at_the_first_close():
    parser = TurnParser(derive_markers(load_template("chatml")))
    text, past = writer_turn(parser.parse(SMOL_PAST_EOS, "assistant"), SMOL_PAST_EOS, "assistant")
    assert (text, past) == ("Hello there!", True)
    assert writer_turn(parser.parse("Still going", "assistant"), "Still going", "assistant") == ("Still going", False)


def test_mistral_empty_assistant_open_switches_on_user_close():
    parser = TurnParser(derive_markers(load_template("mistral"), VARS))
    text = "Sure.</s>[INST] And then? [/INST]Then this."
    content = [(r, t) for r, t in _roles(parser.parse(text, "assistant"), text) if r != "template"]
    assert content == [("assistant", "Sure."), ("user", "And then?"), ("assistant", "Then this.")]


def test_raw_template_paragraph_breaks_do_not_end_a_turn():
    parser = TurnParser(derive_markers(load_template("raw"), VARS))
    text = " First.\n\nSecond paragraph.\n\nUser: a question\n\nAssistant: answer"
    content = [(r, t) for r, t in _roles(parser.parse(text, "assistant"), text) if r != "template"]
    assert content == [("assistant", " First.\n\nSecond paragraph.\n\n"), ("user", "a question\n\n"),
                       ("assistant", "answer")]


def test_markers_without_whitespace_and_eog_extras():
    parser = TurnParser(derive_markers(load_template("chatml")), extra_closes=["<|endoftext|>"])
    text = "ok<|endoftext|>junk<|im_start|>user hi"
    content = [(r, t) for r, t in _roles(parser.parse(text, "assistant"), text) if r != "template"]
    assert content == [("assistant", "ok"), ("user", " hi")]
