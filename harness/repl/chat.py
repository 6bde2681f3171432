"""`harness chat`: open model and template, resume a session or a log, autosave, run the REPL."""

from __future__ import annotations

from typing import Any

from harness.chat.events import Notice
from harness.chat.session import Session
from harness.chat.slash import plural
from harness.prompt.conversation import Conversation
from harness.repl.app import run_repl
from harness.repl.display import Display


def _open_log(path: Any, display: Display):
    """The turn log, or None (with a visible notice) when it cannot be written."""
    from harness.errors import StorageError
    from harness.turn_log import TurnLog, default_log_path

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
    from harness.turn_log import latest_log

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
    a log or None, the log's last settings). A log resumes with its own model, template and
    settings."""
    from harness.chat.saved import read_session, saved_engine
    from harness.turn_log import read_log, resume_messages

    if spec is None:
        return None, {}, None, None, None, {}
    kind, target = _resume_target(spec or None)
    if kind == "log":
        log_path, conversation = resume_messages(target)
        last = list(read_log(log_path))[-1]
        settings = last.get("settings")
        return log_path, _log_engine(last), None, log_path, conversation, settings if isinstance(settings, dict) else {}
    saved = read_session(target)
    return target, saved_engine(saved), saved, None, None, {}


def run_chat(explicit: dict[str, Any], profile, *, resume: str | None = None, log: str | None = None,
             system: str | None = None) -> int:
    """The REPL on a workbench opened from `explicit` options (what the command line said, None
    where it said nothing) over a resumed session's over the profile's."""
    from harness.chat.engine_handle import EngineHandle
    from harness.chat.saved import SessionFile, restore, restore_settings, safe_log_path, saved_id
    from harness.chat.session_io import SessionIO
    from harness.chat.tree_history import TreeHistory
    from harness.chat.turn_settings import TurnSettings
    from harness.generation.open import open_workbench, workbench_options
    from harness.repl.prefs import repl_prefs

    display = Display()
    target, engine_options, saved, resumed_log, resumed, log_settings = _read_resume(resume)
    options = workbench_options(explicit, profile, engine_options)
    overflow = explicit.get("context_overflow") or engine_options.get("context_overflow") or profile.context_overflow
    bench = open_workbench(**options)

    def loader(model: str | None, template: str | None, **changes: Any):
        return open_workbench(**{**options, "model": model, "template": template, **changes})

    engine = EngineHandle(bench, model_spec=options["model"], template_spec=options["template"], loader=loader,
                          options={"threads": options["threads"]})
    prefs = repl_prefs()
    if saved is not None:
        restored = restore(saved, context_overflow=overflow)
        prefs.restore(restored.ui)
        session = Session(engine=engine, settings=restored.settings, trees=restored.trees,
                          transcript=restored.transcript, prefs=prefs,
                          io=SessionIO(autosave=SessionFile(saved_id(saved, target), target)))
        notes = restored.notes
    else:
        system = system if system is not None else profile.system
        conversation = resumed if resumed is not None else Conversation().with_system(system)
        params, notes = restore_settings(log_settings) if log_settings else (profile.sampling, ())
        session = Session(engine=engine, settings=TurnSettings(params, overflow, profile.name),
                          trees=TreeHistory.of(conversation), prefs=prefs, io=SessionIO(autosave=SessionFile()))
    info = bench.info
    display.emit(Notice(f"harness chat — {info.name} ({info.architecture}, n_ctx {info.n_ctx}), "
                        f"template {bench.template.name}; /help for commands"))
    if target is not None:
        display.emit(Notice(f"resumed {plural(len(session.conversation), 'message')} from {target}"))
    for note in [*notes, *bench.warnings]:
        display.emit(Notice(note, "warning"))
    if bench.decode_path is not None and bench.decode_path.notice():
        display.emit(Notice(bench.decode_path.notice(), "warning"))
    display.emit(Notice(f"session: {session.io.autosave.id}"))  # type: ignore[union-attr]
    session.io.attach_log(_open_log(log or resumed_log or safe_log_path((saved or {}).get("log")), display))
    try:
        return run_repl(session, history_path=_history_path())
    finally:
        session.io.close()
        session.engine.close()
