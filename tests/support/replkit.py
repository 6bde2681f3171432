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
