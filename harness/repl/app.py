"""The prompt_toolkit REPL: read a line, hand it to the session, let the display render events.

Ctrl-C at the prompt clears the line; Ctrl-C during generation stops the generation (the
partial turn is kept and marked interrupted), not the app; Ctrl-D or /quit leaves.
"""

from __future__ import annotations

import argparse
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings

from harness.interrupt import sigint_flag
from harness.repl.display import Display
from harness.repl.toolbar import toolbar_fragments
from harness.session import Notice, Session


def make_key_bindings() -> KeyBindings:
    bindings = KeyBindings()
    handle = bindings.add

    @handle("escape", "enter")
    def _newline(event) -> None:
        """Alt-Enter / Esc-Enter inserts a newline; Enter sends."""
        event.current_buffer.insert_text("\n")

    return bindings


def build_prompt_session(session: Session, *, input: Any = None, output: Any = None,
                         history_path: str | None = None) -> PromptSession:
    history = FileHistory(history_path) if history_path else InMemoryHistory()
    return PromptSession(
        message=[("ansigreen bold", "user> ")], bottom_toolbar=lambda: toolbar_fragments(session),
        key_bindings=make_key_bindings(), history=history, input=input, output=output,
    )


def run_repl(session: Session, *, input: Any = None, output: Any = None,
             history_path: str | None = None) -> int:
    prompt = build_prompt_session(session, input=input, output=output, history_path=history_path)
    display = Display(output)
    while True:
        try:
            line = prompt.prompt()
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            with sigint_flag() as stop:
                session.handle(line, display.emit, stop)
        except EOFError:
            break
    return 0


def run_chat(args: argparse.Namespace, profile) -> int:
    """`harness chat`: load model and template from flags/profile, open the log, run the REPL."""
    from harness.commands import open_workbench
    from harness.paths import data_dir
    from harness.store import TurnLog, default_log_path

    bench = open_workbench(args, profile)
    log = TurnLog(args.log or default_log_path())

    def loader(model: str | None, template: str | None):
        changed = argparse.Namespace(**{**vars(args), "model": model, "template": template})
        return open_workbench(changed, profile)

    system = args.system if args.system is not None else profile.system
    session = Session(bench, params=profile.sampling, loader=loader, log=log,
                      template_spec=args.template or profile.template, model_spec=args.model or profile.model)
    if system:
        session.conversation = session.conversation.with_system(system)
    display = Display()
    info = bench.backend.info
    display.emit(Notice(f"harness chat — {info.name} ({info.architecture}, n_ctx {info.n_ctx}), "
                        f"template {bench.template.name}; /help for commands"))
    display.emit(Notice(f"log: {log.path}"))
    data_dir().mkdir(parents=True, exist_ok=True)
    try:
        return run_repl(session, history_path=str(data_dir() / "history"))
    finally:
        log.close()
        session.bench.close()
