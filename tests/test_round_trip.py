"""A generated turn is stored as the message that re-renders as the model wrote it.

What the model saw and wrote (prompt + its turn) must be what the next prompt shows: the
template's own scaffolding (raw's space after ``Assistant:``, a close marker the model wrote past
its end of turn) is not stored twice, nothing the model wrote is dropped, and a template that
rewrites a reply (llama3 trims it) is said to, not hidden.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.events import RawPrompt
from harness.chat.saved import SessionFile
from harness.chat.session import Session
from harness.chat.session_io import SessionIO
from harness.cli.main import main
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation, Message
from harness.prompt.modes import AS_IS, plan_prompt
from harness.prompt.roundtrip import turn_message
from harness.prompt.templates import load_template
from tests.support.cli import write_messages
from tests.support.replkit import drive

QUESTION = Conversation.of(("user", "What is the capital of France?"))


def _rendered(bench, conversation: Conversation) -> str:
    return plan_prompt(conversation, bench.template, AS_IS, variables=bench.variables).prompt


@pytest.mark.parametrize("template, script, eos, content", [
    ("raw", " The capital is Paris.\n\nUser: thanks", "continue", "The capital is Paris."),
    ("chatml", "Paris.<|im_end|>", "stop", "Paris."),
    ("chatml", "Paris.<|im_end|>\n<|im_start|>user\nthanks", "continue", "Paris."),
    ("gemma", " Paris, of course.", "stop", " Paris, of course."),
])
def test_the_stored_message_re_renders_as_the_model_wrote_it(template, script, eos, content):
    bench = Workbench(FakeBackend(script, confidence=30.0), load_template(template))
    plan = bench.plan(QUESTION)
    gen = bench.generate(plan, SamplingParams(temperature=0, max_tokens=len(script), eos=eos))
    assert gen.message == Message("assistant", content) and gen.round_trip is True
    turn_end = len(content) if template != "raw" else len(content) + 1  # raw: the model's space too
    assert _rendered(bench, QUESTION.append("assistant", content)).startswith(plan.prompt + gen.text[:turn_end])


def test_a_template_that_trims_the_reply_says_so_and_keeps_the_words():
    bench = Workbench(FakeBackend(" Paris."), load_template("llama3"))
    gen = bench.generate(bench.plan(QUESTION), SamplingParams(temperature=0, max_tokens=7, eos="ban"))
    assert gen.message.content == " Paris." and gen.round_trip is False
    assert "rewrites the reply" in gen.turn.note and "at character 0" in gen.turn.note
    data = gen.turn.to_dict()
    assert data["round_trip"] is False and data["message"] == {"role": "assistant", "content": " Paris."}


# chatml that writes a message's reasoning back as a think block (as reasoning templates do)
THINKING = ("{%- for m in messages -%}<|im_start|>{{ m.role }}\n{% if m.reasoning_content %}<think>\n"
            "{{ m.reasoning_content }}\n</think>\n\n{% endif %}{{ m.content }}<|im_end|>\n{% endfor -%}"
            "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}")


def test_reasoning_becomes_a_message_field_where_the_template_renders_it_back():
    thinking = replace(load_template("chatml"), name="thinking", source=THINKING)
    turn = "<think>\nIt is Paris.\n</think>\n\nParis."
    got = turn_message(thinking, {}, QUESTION, plan_prompt(QUESTION, thinking).prompt, "", turn, "assistant",
                       Workbench(FakeBackend(), thinking).blocks)
    assert got.round_trip and got.message.content == "Paris."
    assert got.message.extra == {"reasoning_content": "It is Paris."}


def test_reasoning_stays_in_the_content_where_the_template_would_drop_the_field():
    """chatml has no reasoning_content: as a field the think block would vanish from the next prompt."""
    chatml = load_template("chatml")
    turn = "<think>\nIt is Paris.\n</think>\n\nParis."
    got = turn_message(chatml, {}, QUESTION, plan_prompt(QUESTION, chatml).prompt, "", turn, "assistant",
                       Workbench(FakeBackend(), chatml).blocks)
    assert got.round_trip and got.message == Message("assistant", turn)
    assert turn in _rendered(Workbench(FakeBackend(), chatml), Conversation((*QUESTION, got.message)))


def test_generate_json_carries_the_message_and_round_trip(tmp_path, capsys, monkeypatch):
    """The CLI front door: `generate --json` has "message" and "round_trip" (on SmolLM2 in the
    model tests below; here the shape, on the fake through the API the CLI uses)."""
    bench = Workbench(FakeBackend("Paris.<|im_end|>"), load_template("chatml"))
    gen = bench.generate(bench.plan(QUESTION), SamplingParams(temperature=0, max_tokens=9))
    from harness.generation.records import generation_json

    data = generation_json(gen, bench.piece_text)
    assert data["message"] == {"role": "assistant", "content": "Paris."} and data["round_trip"] is True


# -- the real model -------------------------------------------------------------------------------

TEMPLATES_THAT_ROUND_TRIP = ["chatml", "gemma", "alpaca", "phi3", "raw", "mistral"]
# SmolLM2 greedy under gemma writes "<end_of_turn>" at once, and under mistral its eos: an empty
# reply round-trips but shows little, so there the reply is prefilled with a word it goes on from
PREFILLED = {"gemma": "The", "mistral": "The"}


@pytest.mark.model
@pytest.mark.parametrize("template", TEMPLATES_THAT_ROUND_TRIP)
def test_smollm2_greedy_replies_round_trip(smollm2_backend, template):
    bench = Workbench(smollm2_backend, load_template(template))
    bench.evaluator.forget()
    conversation = QUESTION
    prefill = PREFILLED.get(template, "")
    for follow_up in ("And of Italy?", None):
        plan = bench.plan(conversation, "prefill", prefill) if prefill else bench.plan(conversation)
        gen = bench.generate(plan, SamplingParams(temperature=0, max_tokens=40, eos="stop"))
        assert gen.round_trip is True, (template, gen.turn.note)
        assert gen.message.content.strip() and gen.message.content.startswith(prefill)
        conversation = Conversation(conversation.messages + (gen.message,))
        written = plan.prompt + gen.text  # may run on past the turn into the next role's marker
        rendered = _rendered(bench, conversation)
        common = next((i for i, (a, b) in enumerate(zip(rendered, written, strict=False)) if a != b),
                      min(len(rendered), len(written)))
        # the re-rendered prompt is what the model saw and wrote, through the whole stored reply
        assert common >= len(plan.prompt) - len(prefill) + len(gen.message.content)
        if follow_up:
            conversation = conversation.append("user", follow_up)
    if template == "raw":
        assert "Assistant:  " not in _rendered(bench, conversation)


@pytest.mark.model
def test_smollm2_under_llama3_with_a_spaced_prefill_is_honestly_not_round_tripping(smollm2_backend):
    bench = Workbench(smollm2_backend, load_template("llama3"))
    bench.evaluator.forget()
    plan = bench.plan(QUESTION, "prefill", "  Well,")
    gen = bench.generate(plan, SamplingParams(temperature=0, max_tokens=12, eos="stop"))
    assert gen.round_trip is False and gen.message.content.startswith("  Well,")
    assert "rewrites the reply" in gen.turn.note


@pytest.mark.model
def test_the_repl_stores_the_message_so_two_raw_replies_show_one_space(smollm2_backend, tmp_path):
    bench = Workbench(smollm2_backend, load_template("raw"))
    bench.evaluator.forget()
    session = Session(bench, params=SamplingParams(temperature=0, max_tokens=30, eos="stop"),
                      io=SessionIO(autosave=SessionFile("s", tmp_path / "s.json")))
    drive(session, "What is the capital of France?\rAnd of Italy?\r")
    saved = json.loads((tmp_path / "s.json").read_text())["messages"]
    replies = [m["content"] for m in saved if m["role"] == "assistant"]
    assert len(replies) == 2 and all(r and not r.startswith(" ") for r in replies)
    seen: list = []
    handle(session, "/raw", seen.append)
    prompt = next(e for e in seen if isinstance(e, RawPrompt)).prompt
    assert "Assistant:  " not in prompt and prompt.count("Assistant: ") >= 2
    for reply in replies:
        assert f"Assistant: {reply}" in prompt


@pytest.mark.model
def test_generate_json_on_smollm2_has_the_message(tmp_path, capsys):
    messages = write_messages(tmp_path / "m.json", [{"role": "user", "content": "Say hi."}])
    assert main(["generate", "--model", "smollm2", "--messages", str(messages), "--json",
                 "--temperature", "0", "--max-tokens", "16", "--n-ctx", "512"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["round_trip"] is True and out["message"]["role"] == "assistant"
    assert out["message"]["content"] and out["text"].startswith(out["message"]["content"].strip()[:5])
    assert out["decode_path"]["invariant"] is True


def test_a_prompt_that_opens_thinking_keeps_its_opener_out_of_the_reasoning():
    """MiniMax-M2's shape: the generation prompt ends in ``<think>\\n`` and later turns show the
    reasoning in a block of their own: the reasoning stored is the model's words only."""
    from harness.prompt.blocks import derive_blocks
    from harness.prompt.templates import ChatTemplate

    thinks = ChatTemplate("thinks", "{% for m in messages %}<|im_start|>{{ m.role }}\n"
                          "{% if m.reasoning_content %}<think>\n{{ m.reasoning_content }}\n</think>\n\n{% endif %}"
                          "{{ m.content }}<|im_end|>\n{% endfor %}"
                          "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}", "test")
    blocks = derive_blocks(thinks, {}, "<|im_start|>assistant\n<think>\n")
    got = turn_message(thinks, {}, QUESTION, plan_prompt(QUESTION, thinks).prompt, "",
                       "It is Paris.\n</think>\n\nParis.", "assistant", blocks, in_reasoning=True)
    assert got.message.extra == {"reasoning_content": "It is Paris."} and got.message.content == "Paris."
    assert got.round_trip is True


def test_the_repl_says_when_the_stored_turn_does_not_re_render_as_written(tmp_path):
    from tests.support.replkit import fake_session, notices

    session = fake_session(" Paris.<|eot_id|>", template="llama3", tmp_path=tmp_path, max_tokens=7)
    warnings = notices(drive(session, "Where?\r"), "warning")
    assert any(w.startswith("message 1: the next prompt does not show the turn as the model wrote it")
               and "rewrites the reply" in w for w in warnings)
    assert not notices(drive(fake_session("Paris.<|im_end|>", tmp_path=tmp_path, max_tokens=7), "Where?\r"),
                       "warning")
