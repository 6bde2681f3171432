"""The REPL driven through prompt_toolkit pipe input: session state, log, toolbar, interrupts."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.events import Notice
from harness.chat.session import Session
from harness.chat.session_io import SessionIO
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template
from harness.repl.app import run_repl
from harness.repl.prefs import repl_prefs
from harness.repl.toolbar import toolbar_fragments
from harness.turn_log import TurnLog, read_log


def drive(session: Session, text: str) -> None:
    with create_pipe_input() as pipe:
        pipe.send_text(text)
        pipe.close()  # end of input reads as Ctrl-D once the text is consumed
        run_repl(session, input=pipe, output=DummyOutput())


def fake_session(script: str = "Hi!<|im_end|>\n<|im_start|>user\nMore please<|im_end|>", loader=None,
                 **params) -> Session:
    backend = FakeBackend(script)
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    return Session(bench, params=SamplingParams(temperature=0, max_tokens=40, **params), loader=loader,
                   prefs=repl_prefs())


def test_message_then_commands_change_state():
    session = fake_session()
    drive(session, "Hello\n/eos ban\n/bias Z 3\n/set temperature 0.5\n/system Be kind.\n/template chatml\n/quit\n")
    assert [m.role for m in session.conversation] == ["system", "user", "assistant"]
    assert session.conversation.messages[2].content == "Hi!"
    assert session.params.eos == "ban" and session.params.logit_bias == {"Z": 3.0}
    assert session.params.temperature == 0.5
    assert session.bench.template.name == "chatml"


def test_run_past_eos_adds_only_the_assistant_turn_and_impersonate_adds_user():
    session = fake_session(eos="continue")
    drive(session, "Hello\n/impersonate\n")
    roles = [m.role for m in session.conversation]
    assert roles == ["user", "assistant", "user"]
    gen = session.transcript[0]
    assert "user" in {t.role for t in gen.tokens}  # the model's own user turn is in the record
    assert session.transcript[1].mode == "impersonate"


def test_undo_retry_save_load(tmp_path):
    session = fake_session()
    save = tmp_path / "conv.json"
    drive(session, f"Hello\n/retry\n/save {save}\n/undo\n/undo\n/undo\n")  # retry, reply, message
    assert len(session.conversation) == 0 and len(session.transcript) == 2
    drive(session, f"/load {save}\n")
    assert [m.content for m in session.conversation] == ["Hello", "Hi!"]
    assert json.loads(save.read_text())["template"]


def test_errors_are_notices_and_the_repl_goes_on():
    session = fake_session()
    seen = []
    for line in ("/bogus", "/eos maybe", "/set top_p 9", "/template nope", "/bias a b c", "/continue"):
        handle(session, line, seen.append)
    errors = [e for e in seen if isinstance(e, Notice) and e.level == "error"]
    assert len(errors) == 6
    assert all("\n" not in e.text for e in errors)


def test_toolbar_shows_model_template_eos_and_role_entropy():
    session = fake_session(eos="continue")
    handle(session, "Hello", lambda e: None)
    text = "".join(t for _, t in toolbar_fragments(session))
    assert "fake" in text and "eos continue" in text and "assistant" in text and "bits" in text


@pytest.mark.model
def test_repl_on_real_smollm2_with_log(smollm2, tmp_path):
    log = TurnLog(tmp_path / "chat.jsonl")
    session = Session(smollm2, params=SamplingParams(seed=6, eos="continue", max_tokens=40), io=SessionIO(log))
    drive(session, "Say hello in one short sentence.\n/raw\n/entropy\n/impersonate\n/quit\n")
    log.close()
    turns = list(read_log(tmp_path / "chat.jsonl"))
    assert len(turns) == 2
    first = turns[0]
    assert first["model"] == "smollm2" and first["settings"]["eos"] == "continue"
    assert first["messages"][-1]["role"] == "assistant"
    assert {"assistant", "user"} <= {t["role"] for t in first["tokens"]}
    assert all("entropy_bits" in t for t in first["tokens"])
    assert turns[1]["mode"] == "impersonate" and turns[1]["messages"][-1]["role"] == "user"
    assert [m.role for m in session.conversation] == ["user", "assistant", "user"]


@pytest.mark.model
def test_ctrl_c_during_generation_stops_it_not_the_app(smollm2, tmp_path):
    session = Session(smollm2, params=SamplingParams(seed=0, eos="ban", max_tokens=1500))
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        drive(session, "Write a very long story about a dragon.\n/set temperature 0.3\n")
    finally:
        timer.cancel()
    gen = session.transcript[0]
    assert gen.stop_reason == "interrupted" and 0 < len(gen.tokens) < 1500
    assert session.conversation.messages[-1].content  # the partial text was kept
    assert session.params.temperature == 0.3  # the REPL went on to the next line


def test_model_switch_keeps_conversation_and_a_failed_switch_keeps_the_old_model():
    from harness.errors import ModelError

    def loader(model, template):
        if model == "missing":
            raise ModelError("no such model file", where=model)
        backend = FakeBackend("Other!<|im_end|>")
        return Workbench(backend, load_template(template or "chatml"))

    session = fake_session(loader=loader)
    drive(session, "Hello\n/model missing\n")
    old = session.bench
    assert session.conversation.messages[-1].content == "Hi!"
    drive(session, "/model other\n/reply\n")
    assert session.bench is not old
    assert [m.content for m in session.conversation] == ["Hello", "Hi!", "Other!"]


def test_a_broken_template_switch_keeps_the_working_one(tmp_path):
    session = fake_session()
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}{{ m.content }")
    seen = []
    handle(session, f"/template {broken}", seen.append)
    assert seen[-1].level == "error" and "broken.jinja:1" in seen[-1].text
    assert session.bench.template.origin == "gguf"
    handle(session, "Hello", seen.append)
    assert session.conversation.messages[-1].content == "Hi!"
