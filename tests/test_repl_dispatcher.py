"""Issue 26: the REPL outlives any one command. What escaped the dispatcher (deep JSON in
/insert and /set var., /load of a device, any exception a command raises) is one error line, the
conversation as it was, the traceback in the session log; and a logit bias of +inf or nan is
refused, not a silent ban."""

from __future__ import annotations

import json
import math

import pytest

from harness.chat.events import MessageList, RawPrompt
from harness.errors import HarnessError
from harness.turn_log import TurnLog, read_log
from tests.support.replkit import drive
from tests.test_repl_trust import notices, saved, session_on

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("line", [
    '/insert 0 {"role": "user", "content": "x", "extra": ' + DEEP + "}",
    "/set var.tools " + DEEP,
    "/load /dev/zero",
])
def test_hostile_command_input_is_one_error_and_the_session_goes_on(line, tmp_path):
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, "Hello\r" + line + "\r/messages\r")
    errors = notices(recorder, "error")
    assert len(errors) == 1 and "\n" not in errors[0]
    assert [m["content"] for m in saved(tmp_path)["messages"]] == ["Hello", "Hi!"]
    assert recorder.of(MessageList)  # /messages ran after


def test_an_unexpected_exception_is_one_line_and_the_traceback_goes_to_the_log(tmp_path, monkeypatch):
    from harness.chat.commands import edit

    session = session_on(tmp_path=tmp_path)
    session.io.attach_log(TurnLog(tmp_path / "log.jsonl"))

    def broken(*args):
        raise KeyError("a bug\nwith a second line")

    monkeypatch.setitem(edit.COMMANDS.handlers, "messages", broken)
    recorder = drive(session, "Hello\r/messages\r/raw\r")
    assert recorder.of(RawPrompt)  # the session went on
    errors = notices(recorder, "error")
    assert len(errors) == 1 and "KeyError" in errors[0] and "\n" not in errors[0]
    assert str(tmp_path / "log.jsonl") in errors[0]
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("Traceback" in r.get("harness_error", {}).get("traceback", "") for r in records)
    assert all("harness_error" not in turn for turn in read_log(tmp_path / "log.jsonl"))  # no turn
    assert saved(tmp_path)["messages"][-1]["content"] == "Hi!"


@pytest.mark.parametrize("value", ["inf", "+inf", "nan", "-nan", "Infinity"])
def test_bias_refuses_non_finite_values_in_every_door(value, tmp_path, capsys):
    from harness.cli.main import main

    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, f"/bias H {value}\r")
    assert any("not a bias" in e or "finite" in e for e in notices(recorder, "error"))
    assert session.params.logit_bias == {}
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    assert main(["generate", "--messages", str(messages), "--template", "chatml", "--bias", f"2={value}",
                 "--backend", "http://127.0.0.1:9"]) == 1
    assert "not a bias" in capsys.readouterr().err
    import harness

    with pytest.raises(HarnessError, match="not a bias"):
        harness.api.open("smollm2", template="chatml", logit_bias={"2": float(value)})


def test_minus_inf_still_bans(tmp_path):
    session = session_on(tmp_path=tmp_path)
    drive(session, "/bias H -inf\r")
    assert session.params.logit_bias == {"H": -math.inf}
