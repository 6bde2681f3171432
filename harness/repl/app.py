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


def _open_log(args: argparse.Namespace, display: Display):
    """The turn log, or None (with a visible notice) when it cannot be written."""
    from harness.errors import StorageError
    from harness.store import TurnLog, default_log_path

    try:
        log = TurnLog(args.log or args.resume_path or default_log_path())
    except StorageError as exc:
        display.emit(Notice(f"{exc}; this session is not logged", "error"))
        return None
    display.emit(Notice(f"log: {log.path}"))
    return log


def _history_path() -> str | None:
    from harness.paths import data_dir

    try:
        data_dir().mkdir(parents=True, exist_ok=True)
        path = data_dir() / "history"
        with path.open("a"):
            pass
        return str(path)
    except OSError:
        return None  # read-only or full data directory: history stays in memory


def run_chat(args: argparse.Namespace, profile) -> int:
    """`harness chat`: load model and template from flags/profile, open the log, run the REPL."""
    from harness.commands import open_workbench, overflow_policy
    from harness.store import resume_messages

    display = Display()
    args.resume_path = None
    resumed = None
    if args.resume is not None:
        args.resume_path, resumed = resume_messages(args.resume or None)
    bench = open_workbench(args, profile)

    def loader(model: str | None, template: str | None):
        changed = argparse.Namespace(**{**vars(args), "model": model, "template": template})
        return open_workbench(changed, profile)

    system = args.system if args.system is not None else profile.system
    session = Session(bench, params=profile.sampling, loader=loader,
                      template_spec=args.template or profile.template, model_spec=args.model or profile.model,
                      context_overflow=overflow_policy(args, profile))
    if resumed is not None:
        session.conversation = resumed
    elif system:
        session.conversation = session.conversation.with_system(system)
    info = bench.backend.info
    display.emit(Notice(f"harness chat — {info.name} ({info.architecture}, n_ctx {info.n_ctx}), "
                        f"template {bench.template.name}; /help for commands"))
    if resumed is not None:
        display.emit(Notice(f"resumed {len(resumed)} messages from {args.resume_path}"))
    session.log = _open_log(args, display)
    try:
        return run_repl(session, history_path=_history_path())
    finally:
        if session.log is not None:
            session.log.close()
        session.bench.close()
