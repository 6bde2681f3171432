"""`harness chat`: open model and template, resume a session or a log, autosave, run the REPL."""

from __future__ import annotations

from typing import Any

from harness.chat.session import Notice, Session
from harness.repl.app import run_repl
from harness.repl.display import Display


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
    from harness.chat.saved import find_session, list_sessions
    from harness.store import latest_log

    if spec and spec.endswith(".jsonl"):
        return "log", spec
    if not spec and not list_sessions() and latest_log() is not None:
        return "log", None
    return "session", find_session(spec)


def _log_engine(turn: dict[str, Any]) -> dict[str, Any]:
    """What a chat log's last turn says about the model and template it ran on."""
    from pathlib import Path

    from harness.models.registry import KNOWN_MODELS

    turn = {k: v for k, v in turn.items() if isinstance(v, str)}  # a log is data: strings only
    model = turn.get("model_spec") or (turn.get("model") if turn.get("model") in KNOWN_MODELS else None)
    path = turn.get("model_path")
    if model is None and isinstance(path, str) and Path(path).is_file():
        model = path  # a model opened by path: the same file
    template = turn.get("template_spec")
    if template is None and isinstance(turn.get("template"), str):
        name = turn["template"]
        template = "gguf" if name.endswith(":gguf") else name
    return {"model": model, "template": template, "backend": turn.get("backend")}


def _read_resume(spec: str | None):
    """(target, saved engine options, saved session or None, log path or None, conversation from
    a log or None). A log resumes with its own model and template."""
    from harness.chat.saved import read_session, saved_engine
    from harness.store import read_log, resume_messages

    if spec is None:
        return None, {}, None, None, None
    kind, target = _resume_target(spec or None)
    if kind == "log":
        log_path, conversation = resume_messages(target)
        last = list(read_log(log_path))[-1]
        return log_path, _log_engine(last), None, log_path, conversation
    saved = read_session(target)
    return target, saved_engine(saved), saved, None, None


def run_chat(explicit: dict[str, Any], profile, *, resume: str | None = None, log: str | None = None,
             system: str | None = None) -> int:
    """The REPL on a workbench opened from `explicit` options (what the command line said, None
    where it said nothing) over a resumed session's over the profile's."""
    from harness.chat.saved import SessionFile, restore, safe_log_path, saved_id
    from harness.generation.open import open_workbench, workbench_options

    display = Display()
    target, engine, saved, resumed_log, resumed = _read_resume(resume)
    options = workbench_options(explicit, profile, engine)
    bench = open_workbench(**options)

    def loader(model: str | None, template: str | None, **changes: Any):
        return open_workbench(**{**options, "model": model, "template": template, **changes})

    overflow = explicit.get("context_overflow") or engine.get("context_overflow") or profile.context_overflow
    session = Session(bench, params=profile.sampling, loader=loader,
                      template_spec=options["template"], model_spec=options["model"],
                      context_overflow=overflow, profile_name=profile.name)
    system = system if system is not None else profile.system
    if saved is not None:
        restore(session, saved)
        session.autosave = SessionFile(saved_id(saved, target), target)
    elif resumed is not None:
        session.conversation = resumed
    elif system:
        session.conversation = session.conversation.with_system(system)
    session.undo_stack.clear()
    session.autosave = session.autosave or SessionFile()
    info = bench.info
    display.emit(Notice(f"harness chat — {info.name} ({info.architecture}, n_ctx {info.n_ctx}), "
                        f"template {bench.template.name}; /help for commands"))
    if target is not None:
        display.emit(Notice(f"resumed {len(session.conversation)} messages from {target}"))
    for note in [*session.restore_notes, *bench.warnings]:
        display.emit(Notice(note, "warning"))
    display.emit(Notice(f"session: {session.autosave.id}"))
    session.log = _open_log(log or resumed_log or safe_log_path((saved or {}).get("log")), display)
    try:
        return run_repl(session, history_path=_history_path())
    finally:
        if session.log is not None:
            session.log.close()
        session.bench.close()
