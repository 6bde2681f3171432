"""Inspection follows the message or says it is gone (issue 23, finding 8): after /edit the
inspector refuses to answer from the old tokens; after /insert or /delete it stays with the
message /tokens chose, or says it left the conversation."""

from __future__ import annotations

from harness.chat.events import Alternatives, TokenView
from tests.support.replkit import drive, fake_session, notices, saved

SCRIPT = "Hi there!<|im_end|>"


def test_after_an_edit_alts_and_branch_refuse_the_old_tokens(tmp_path):
    session = fake_session(SCRIPT, tmp_path=tmp_path, max_tokens=6)
    recorder = drive(session, "Hello\r/tokens 1\r/edit 1 Something else entirely\r/alts 2\r/branch 2 1\r/tokens 1\r")
    errors = notices(recorder, "error")
    assert len(errors) == 3 and all("message 1 was edited after it was generated" in e for e in errors)
    assert saved(tmp_path)["messages"][1]["content"] == "Something else entirely"
    assert len(session.tree.siblings(1)) == 1  # no branch was made from the old text
    recorder = drive(session, "/undo\r/alts 2\r")
    assert recorder.of(Alternatives)[-1].message == 1  # the generated text is back: so is inspection


def test_inspection_follows_its_message_through_an_insert_and_says_when_it_is_deleted(tmp_path):
    session = fake_session(SCRIPT, tmp_path=tmp_path, max_tokens=6)
    recorder = drive(session, "Hello\rAgain\r/tokens 1\r/insert 0 system Be brief.\r/alts 1\r")
    assert recorder.of(TokenView)[-1].message == 1
    assert recorder.of(Alternatives)[-1].message == 2  # the same message, one further down
    recorder = drive(session, "/delete 2\r/alts 1\r")
    assert "no longer in the conversation" in notices(recorder, "error")[-1]
    recorder = drive(session, "/tokens\r/alts 1\r")
    assert recorder.of(Alternatives)[-1].message == 3  # /tokens inspects the newest again
