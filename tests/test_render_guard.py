"""No edit leaves a conversation the template cannot render (issue 23, finding 6): the edit is
refused and the next line is still answered; tool calls are visible in /messages and /show, and a
template that leaves them out of the prompt says so. Asserted on the saved session and /raw."""

from __future__ import annotations

import json

from harness.chat.dispatch import handle
from harness.chat.events import MessageList, MessageShown, TurnFinished
from harness.prompt.conversation import Conversation
from harness.prompt.preview import check_render
from harness.prompt.templates import load_template
from tests.support.replkit import drive, fake_session, notices, raw_prompt, saved

CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
NULL_CALL = json.dumps({"role": "assistant", "content": None, "tool_calls": [CALL]})
EMPTY_CALL = json.dumps({"role": "assistant", "content": "", "tool_calls": [CALL]})


def test_an_insert_the_template_cannot_render_is_refused_and_the_next_line_answered(tmp_path):
    session = fake_session("Ok<|im_end|>", tmp_path=tmp_path, max_tokens=4)
    recorder = drive(session, f"Hi\r/insert 2 {NULL_CALL}\rAgain\r")
    errors = notices(recorder, "error")
    assert len(errors) == 1 and "cannot render the conversation at message 2" in errors[0]
    assert "\n" not in errors[0] and "as it was" in errors[0]
    assert not any(n.startswith("inserted") for n in notices(recorder))  # it was not
    messages = saved(tmp_path)["messages"]
    assert [m["content"] for m in messages] == ["Hi", "Ok", "Again", "Ok"]  # answered
    assert recorder.of(TurnFinished)[-1].generation.text == "Ok"
    assert raw_prompt(session).count("<|im_start|>assistant") == 3


def test_an_edit_of_a_conversation_that_did_not_render_is_let_through(tmp_path):
    """A conversation that could not render before (a resumed one) may be mended step by step."""
    from harness.chat.tree import Tree

    session = fake_session("Ok<|im_end|>", tmp_path=tmp_path)
    bad = Conversation.from_dicts([{"role": "user", "content": "Hi"}, json.loads(NULL_CALL)])
    session.trees.change(Tree.from_conversation(bad))
    recorder = drive(session, "/insert 1 user More\r/delete 2\r")
    assert notices(recorder, "error") == []
    assert [m["content"] for m in saved(tmp_path)["messages"]] == ["Hi", "More"]


def test_tool_calls_show_in_messages_and_show_and_a_template_dropping_them_says_so(tmp_path):
    session = fake_session("Ok<|im_end|>", tmp_path=tmp_path)
    recorder = drive(session, f"Hi\r/insert 2 {EMPTY_CALL}\r/messages\r/show 2\r")
    listed = recorder.of(MessageList)[-1].rows[2]
    shown = recorder.of(MessageShown)[-1].row
    assert listed.extras == shown.extras == ('tool call get_weather {"city": "Paris"}',)
    warnings = notices(recorder, "warning")
    assert any("message 2 has tool calls the prompt does not show" in w for w in warnings)
    assert "get_weather" not in raw_prompt(session)  # the warning tells the truth


def test_switching_to_a_template_that_cannot_render_the_conversation_is_refused(tmp_path):
    session = fake_session("Ok<|eot_id|>", template="llama3", tmp_path=tmp_path, max_tokens=3)
    # llama3 renders null content; chatml concatenates it and cannot
    drive(session, f"Hi\r/insert 2 {NULL_CALL}\r")
    assert len(session.conversation) == 3
    recorder = drive(session, "/template chatml\r")
    errors = notices(recorder, "error")
    assert len(errors) == 1 and "cannot render the conversation at message 2" in errors[0]
    assert session.bench.template.name == "llama3"
    assert saved(tmp_path)["template"] == "llama3"


def test_check_render_finds_the_first_failing_message_and_dropped_calls():
    gguf = load_template("gguf", embedded="{% for m in messages %}{{ m['role'] + m['content'] }}{% endfor %}")
    conversation = Conversation.from_dicts([{"role": "user", "content": "a"}, json.loads(NULL_CALL),
                                            {"role": "user", "content": "b"}])
    check = check_render(gguf, {}, conversation)
    assert not check.renders and check.failing == 1
    dropped = check_render(load_template("chatml"), {}, Conversation.from_dicts(
        [{"role": "user", "content": "a"}, json.loads(EMPTY_CALL)]))
    assert dropped.renders and dropped.dropped == (1,)


def test_a_generated_turn_keeps_its_interrupted_mark_in_messages(tmp_path):
    session = fake_session("Hello there, a long answer<|im_end|>", tmp_path=tmp_path, max_tokens=30)
    calls = iter(range(100))
    seen: list = []
    handle(session, "Hi", seen.append, should_stop=lambda: next(calls) >= 3)
    handle(session, "/messages", seen.append)
    assert [r.interrupted for r in seen[-1].rows] == [False, True]
