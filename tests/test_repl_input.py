"""REPL input and editing, driven by pipe input on the fake backend: keys, history, completion,
the editing commands, undo/redo, profiles, /set and /help."""

from __future__ import annotations

import sys

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handler
from harness.chat.events import MessageList, Notice
from harness.chat.session import Session
from harness.chat.slash import COMMANDS
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template
from harness.repl.completer import HarnessCompleter
from harness.repl.prefs import repl_prefs
from tests.support.replkit import drive


def fake_session(script: str = "Hi!<|im_end|>", io=None) -> Session:
    backend = FakeBackend(script)
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    return Session(bench, params=SamplingParams(temperature=0, max_tokens=20), prefs=repl_prefs(), io=io)


def contents(session: Session) -> list[str]:
    return [m.content for m in session.conversation]


def test_every_registered_command_has_a_handler_and_an_example_or_usage():
    for command in COMMANDS:
        assert callable(handler(command.name))
        assert command.usage.startswith("/" + command.name)


def test_enter_sends_alt_enter_inserts_a_newline_and_the_setting_swaps_them():
    session = fake_session()
    drive(session, "first\x1b\rsecond\r/set multiline on\rthird\rfourth\x1b\r")
    users = [m.content for m in session.conversation if m.role == "user"]
    assert users == ["first\nsecond", "third\nfourth"]


def test_ctrl_c_at_the_prompt_clears_the_line_and_ctrl_d_quits():
    session = fake_session()
    recorder = drive(session, "never sent\x03/messages\r\x04Not typed\r")
    assert len(session.conversation) == 0
    assert recorder.of(MessageList)  # the REPL went on after Ctrl-C, and stopped at Ctrl-D


def test_vi_mode_edits_with_vi_keys():
    session = fake_session()
    drive(session, "/set vi on\rhellp\x1bxao\r")  # Esc, x deletes the p, a appends o
    assert contents(session)[0] == "hello"
    assert session.prefs["vi"] is True


def test_history_is_a_file_in_the_data_dir_and_ctrl_r_searches_it(harness_home):
    history = harness_home / "history"
    harness_home.mkdir(parents=True)
    session = fake_session()
    drive(session, "remember the lighthouse\r", history_path=str(history))
    assert "remember the lighthouse" in history.read_text()
    again = fake_session()
    drive(again, "\x12lightho\r\r", history_path=str(history))
    assert contents(again)[0] == "remember the lighthouse"


def test_tab_completes_commands_in_the_repl():
    session = fake_session()
    recorder = drive(session, "Hello\r/messa\t", then="\r")
    assert recorder.of(MessageList)


@pytest.mark.parametrize(("text", "expected"), [
    ("/tem", "/template"), ("/template cha", "chatml"), ("/profile smol", "smollm2"),
    ("/model gem", "gemma3-270m"), ("/eos con", "continue"), ("/help bra", "branch"),
    ("/swipe pr", "prev"), ("/set temp", "temperature"),
])
def test_completion_of_commands_and_their_arguments(text, expected):
    found = [c.text for c in HarnessCompleter().get_completions(Document(text), CompleteEvent())]
    assert expected in found


def test_completion_of_file_paths(tmp_path):
    (tmp_path / "conversation.yaml").write_text("[]")
    found = [c.text for c in HarnessCompleter().get_completions(Document(f"/load {tmp_path}/conv"),
                                                                CompleteEvent())]
    assert "ersation.yaml" in found


def test_edit_commands_and_undo_redo():
    session = fake_session()
    drive(session, "Hello\r/insert 0 system Be brief.\r/edit 1 Hello there\r/role 2 user\r"
                   "/insert 3 assistant Sure.\r/delete 2\r")
    assert [(m.role, m.content) for m in session.conversation] == [
        ("system", "Be brief."), ("user", "Hello there"), ("assistant", "Sure.")]
    drive(session, "/undo\r/undo\r")
    assert [m.role for m in session.conversation] == ["system", "user", "user"]
    drive(session, "/redo\r")
    assert [m.role for m in session.conversation] == ["system", "user", "user", "assistant"]
    recorder = drive(session, "/redo\r/redo\r/undo\r/messages\r")
    errors = [e.text for e in recorder.of(Notice) if e.level == "error"]
    assert errors[0].startswith("nothing to redo")
    rows = recorder.of(MessageList)[-1].rows
    assert [r.index for r in rows] == list(range(len(session.conversation)))


def test_inline_edit_is_prefilled_with_the_message():
    session = fake_session()
    drive(session, "Hello\r/edit 0\r world\r/edit 1\r\x03")
    assert contents(session) == ["Hello world", "Hi!"]  # Ctrl-C cancelled the second edit


def test_edit_in_editor(monkeypatch):
    session = fake_session()
    script = f"{sys.executable} -c \"import sys; p=sys.argv[1]; t=open(p).read(); open(p,'w').write(t.upper())\""
    monkeypatch.setenv("VISUAL", script)
    drive(session, "Hello\r/edit 1 --editor\r")
    assert contents(session) == ["Hello", "HI!"]


def test_profile_switch_and_set_and_help(harness_home):
    (harness_home / "profiles").mkdir(parents=True)
    (harness_home / "profiles" / "terse.yaml").write_text(
        "template: chatml\neos: continue\nsystem: Be terse.\nsampling: {temperature: 0.3, max_tokens: 12}\n")
    session = fake_session()
    recorder = drive(session, "Hello\r/profile terse\r/set\r/help branch\r/profile nope\r")
    assert session.bench.template.name == "chatml" and session.params.eos == "continue"
    assert session.params.temperature == 0.3 and session.settings.profile == "terse"
    assert [m.role for m in session.conversation] == ["system", "user", "assistant"]
    texts = [e.text for e in recorder.of(Notice)]
    assert any("temperature" in t and "shade" in t and "profile" in t for t in texts)  # /set shows all
    assert any(t.startswith("/branch K ALT") and "example: /branch" in t for t in texts)
    assert "no profile 'nope'" in texts[-1]


def test_shade_set_and_shown():
    session = fake_session()
    drive(session, "/shade off\r")
    assert session.prefs["shade"] is False
    recorder = drive(session, "/shade\r")  # bare shows, changes nothing (issue 14, bug 5)
    assert session.prefs["shade"] is False and recorder.of(Notice)[0].text == "shade = off"
    drive(session, "/shade on\r")
    assert session.prefs["shade"] is True


def test_autosave_writes_nothing_until_something_is_said(harness_home):
    from harness.chat.saved import SessionFile, list_sessions
    from harness.chat.session_io import SessionIO

    session = fake_session(io=SessionIO(autosave=SessionFile("quiet")))
    drive(session, "/set temperature 0.5\r")
    assert list_sessions() == []
    drive(session, "Hello\r")
    assert [r.id for r in list_sessions()] == ["quiet"] and list_sessions()[0].title == "Hello"
