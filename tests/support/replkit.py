"""Drive the REPL with prompt_toolkit pipe input and keep every event the session emitted."""

from __future__ import annotations

import threading

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from harness.chat.session import Session
from harness.repl.app import run_repl
from harness.repl.display import Display


class Recorder(Display):
    def __init__(self, session: Session):
        super().__init__(DummyOutput(), session.prefs)
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)
        super().emit(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def drive(session: Session, keys: str, history_path: str | None = None,
          then: str | None = None) -> Recorder:
    """Type `keys` (\\r is Enter, \\x1b\\r Alt-Enter, \\x03 Ctrl-C, \\x12 Ctrl-R) then Ctrl-D.
    `then` is typed half a second later (after asynchronous work such as completion)."""
    recorder = Recorder(session)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        if then is None:
            pipe.close()
        else:
            def later() -> None:
                pipe.send_text(then)
                pipe.close()

            threading.Timer(0.5, later).start()
        run_repl(session, input=pipe, output=DummyOutput(), history_path=history_path, display=recorder)
    return recorder


def fake_session(script: str = "Hi!<|im_end|>", template: str = "gguf", tmp_path=None, **params) -> Session:
    """A session on the fake backend (greedy unless told), autosaving to tmp_path/s.json."""
    from harness.backends.fake import FakeBackend
    from harness.chat.saved import SessionFile
    from harness.chat.session_io import SessionIO
    from harness.generation.settings import SamplingParams
    from harness.generation.workbench import Workbench
    from harness.prompt.templates import load_template
    from harness.repl.prefs import repl_prefs

    backend = FakeBackend(script)
    bench = Workbench(backend, load_template(template, embedded=backend.info.chat_template))
    autosave = SessionFile("s", tmp_path / "s.json") if tmp_path is not None else None
    return Session(bench, params=SamplingParams(**{"temperature": 0, "max_tokens": 20, **params}),
                   prefs=repl_prefs(), io=SessionIO(autosave=autosave))


def saved(tmp_path) -> dict:
    """The session file fake_session autosaved."""
    import json

    return json.loads((tmp_path / "s.json").read_text())


def raw_prompt(session: Session, mode: str = "") -> str:
    """The prompt /raw shows (the next reply's)."""
    from harness.chat.dispatch import handle
    from harness.chat.events import RawPrompt

    seen: list = []
    handle(session, f"/raw {mode}".strip(), seen.append)
    return next(e for e in seen if isinstance(e, RawPrompt)).prompt


def notices(recorder: Recorder, level: str | None = None) -> list[str]:
    from harness.chat.events import Notice

    return [e.text for e in recorder.of(Notice) if level is None or e.level == level]
