"""`harness chat`: open model and template, resume a session or a log, autosave, run the REPL."""

from __future__ import annotations

import argparse
from typing import Any

from harness.repl.app import run_repl
from harness.repl.display import Display
from harness.session import Notice, Session


def _open_log(path: Any, display: Display):
    """The turn log, or None (with a visible notice) when it cannot be written."""
    from harness.errors import StorageError
    from harness.store import TurnLog, default_log_path

    try:
        log = TurnLog(path or default_log_path())
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


def _resume_target(spec: str | None) -> tuple[str, Any]:
    """("log", path) for a .jsonl chat log, ("session", path) for a saved session. With no spec,
    the newest session, or the newest log when no session was ever saved."""
    from harness.session_store import find_session, list_sessions
    from harness.store import latest_log

    if spec and spec.endswith(".jsonl"):
        return "log", spec
    if not spec and not list_sessions() and latest_log() is not None:
        return "log", None
    return "session", find_session(spec)


def _read_resume(args: argparse.Namespace):
    """(target, saved session or None, log path or None, conversation from a log or None)."""
    from harness.session_store import read_session
    from harness.store import resume_messages

    if args.resume is None:
        return None, None, None, None
    kind, target = _resume_target(args.resume or None)
    if kind == "log":
        log_path, conversation = resume_messages(target)
        return log_path, None, log_path, conversation
    saved = read_session(target)
    args.model = args.model or saved.get("model_spec")
    args.template = args.template or saved.get("template_spec")
    return target, saved, None, None


def run_chat(args: argparse.Namespace, profile) -> int:
    from harness.commands import open_workbench, overflow_policy
    from harness.session_store import SessionFile, restore

    display = Display()
    target, saved, resumed_log, resumed = _read_resume(args)
    bench = open_workbench(args, profile)

    def loader(model: str | None, template: str | None):
        changed = argparse.Namespace(**{**vars(args), "model": model, "template": template})
        return open_workbench(changed, profile)

    session = Session(bench, params=profile.sampling, loader=loader,
                      template_spec=args.template or profile.template, model_spec=args.model or profile.model,
                      context_overflow=overflow_policy(args, profile), profile_name=profile.name)
    system = args.system if args.system is not None else profile.system
    if saved is not None:
        restore(session, saved)
        session.autosave = SessionFile(saved.get("id") or target.stem, target)
    elif resumed is not None:
        session.conversation = resumed
    elif system:
        session.conversation = session.conversation.with_system(system)
    session.undo_stack.clear()
    session.autosave = session.autosave or SessionFile()
    info = bench.backend.info
    display.emit(Notice(f"harness chat — {info.name} ({info.architecture}, n_ctx {info.n_ctx}), "
                        f"template {bench.template.name}; /help for commands"))
    if target is not None:
        display.emit(Notice(f"resumed {len(session.conversation)} messages from {target}"))
    display.emit(Notice(f"session: {session.autosave.id}"))
    session.log = _open_log(args.log or resumed_log or (saved or {}).get("log"), display)
    try:
        return run_repl(session, history_path=_history_path())
    finally:
        if session.log is not None:
            session.log.close()
        session.bench.close()
