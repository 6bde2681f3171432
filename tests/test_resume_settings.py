"""Seeds and resuming (issue 23, finding 9): a session whose saved seed is -7 resumes at the
default with a warning, not "damaged"; `--resume LOG` restores the log's settings; the hint after
resuming a file names that file; plurals are plural."""

from __future__ import annotations

import json

from harness.chat.saved import SessionFile, read_session, restore, restore_settings
from harness.chat.tree import Tree
from harness.prompt.conversation import Conversation
from tests.support.replkit import drive, fake_session, notices

HELLO = Conversation.of(("user", "Hi"), ("assistant", "Hello"))


def session_file(tmp_path, **settings):
    data = {"format": "harness-session", "version": 1, "id": "s", "settings": settings, "ui": {},
            "messages": HELLO.to_dicts(), "tree": Tree.from_conversation(HELLO).to_dict(), "generations": []}
    path = tmp_path / "shared.json"
    path.write_text(json.dumps(data))
    return path


def test_a_session_with_seed_minus_7_resumes_at_the_default_with_a_warning(tmp_path):
    restored = restore(read_session(session_file(tmp_path, seed=-7, max_tokens=99, top_p=3)))
    assert restored.settings.params.seed is None and restored.settings.params.max_tokens == 99
    assert restored.settings.params.top_p == 0.95
    assert [n.split(" is not")[0] for n in restored.notes] == ["saved setting seed=-7", "saved setting top_p=3"]


def test_an_unknown_saved_setting_resumes_with_a_note():
    params, notes = restore_settings({"max_tokens": 7, "gone_setting": 1})
    assert params.max_tokens == 7 and notes == ("saved setting gone_setting=1 is not valid; using the default",)


def test_resume_from_a_log_takes_the_log_settings(tmp_path, harness_home):
    from harness.repl.chat import _read_resume
    from harness.turn_log import TurnLog

    session = fake_session(max_tokens=7, temperature=0.3)
    log = TurnLog(tmp_path / "chat.jsonl")
    session.io.attach_log(log)
    drive(session, "Hello\r")
    log.close()
    *_, conversation, settings = _read_resume(str(tmp_path / "chat.jsonl"))
    params, notes = restore_settings(settings)
    assert params.max_tokens == 7 and params.temperature == 0.3 and notes == ()
    assert len(conversation) == 2


def test_the_resume_hint_names_the_file_a_session_was_resumed_from(tmp_path, harness_home):
    from harness.chat.session_io import SessionIO
    from harness.repl.app import _say_where_saved
    from tests.support.replkit import Recorder

    elsewhere = tmp_path / "shared copy.json"
    session = fake_session()
    session.io = SessionIO(autosave=SessionFile("some-id", elsewhere))  # as --resume FILE opens it
    drive(session, "Hello\r")
    recorder = Recorder(session)
    _say_where_saved(session, recorder)
    assert notices(recorder)[-1].endswith(f"harness chat --resume '{elsewhere}'")
    home = fake_session()
    home.io = SessionIO(autosave=SessionFile("plain-id"))
    drive(home, "Hello\r")
    recorder = Recorder(home)
    _say_where_saved(home, recorder)
    assert notices(recorder)[-1].endswith("harness chat --resume plain-id")


def test_counts_say_one_message_and_two_messages():
    session = fake_session()
    recorder = drive(session, "/insert 0 user One\r/undo\r/insert 0 user One\r/insert 1 user Two\r/undo\r")
    assert "undone; 0 messages" in notices(recorder) and "undone; 1 message" in notices(recorder)
