"""Saved sessions: the conversation tree, the turns generated and the settings, in one JSON file.

Sessions autosave to ``$HARNESS_HOME/sessions/ID.json`` after every command (atomically). The file
holds ``messages`` (the chosen path — so /load and messages-file readers take it as is), the
``tree`` with every branch and swipe, and the ``generations`` with their token statistics, so
/tokens, /alts and /branch work after ``harness chat --resume ID``. Exports are the Markdown
transcript with per-role statistics and the same JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.atomic import save_json
from harness.chat.session_check import check_session
from harness.chat.transcript import Transcript
from harness.chat.tree import Tree
from harness.chat.tree_history import TreeHistory
from harness.chat.turn_settings import TurnSettings
from harness.errors import HarnessError, StorageError
from harness.generation.records import Generation, TokenRecord, role_summaries
from harness.generation.settings import OVERFLOW_ERROR, OVERFLOW_POLICIES, SamplingParams
from harness.paths import data_dir, logs_dir
from harness.stats.entropy import StepStats
from harness.untrusted import visible_line

if TYPE_CHECKING:
    from harness.chat.session import Session

FORMAT = "harness-session"
MAX_SESSION_BYTES = 512 * 2**20
VERSION = 1


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def new_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


class SessionFile:
    """Where one session autosaves."""

    def __init__(self, session_id: str | None = None, path: Path | None = None):
        self.id = session_id or new_id()
        self.path = path or sessions_dir() / f"{self.id}.json"
        self.created = datetime.now().isoformat(timespec="seconds")

    def save(self, session: Session) -> None:
        if not len(session.tree) and not len(session.transcript) and not self.path.exists():
            return  # nothing said yet: no empty session files
        save_json(self.path, {**session_state(session), "id": self.id, "created": self.created},
                  indent=None)


# -- the state -----------------------------------------------------------------------------------
def _token_state(t: TokenRecord) -> list[Any]:
    s = t.stats
    if s is None:
        return [t.id, t.piece, t.role]
    return [t.id, t.piece, t.role, round(s.entropy_bits, 5), round(s.surprisal_bits, 5),
            round(s.eot_prob, 6), list(s.top_ids), [round(p, 6) for p in s.top_probs]]


def _token_from(item: list[Any]) -> TokenRecord:
    stats = None
    if len(item) >= 8:
        stats = StepStats(item[3], item[4], item[5], tuple(item[6]), tuple(item[7]))
    return TokenRecord(int(item[0]), str(item[1]), str(item[2]), stats)


def generation_state(gen: Generation) -> dict[str, Any]:
    return {"mode": gen.mode, "writer": gen.writer, "text": gen.text, "stop_reason": gen.stop_reason,
            "seconds": gen.seconds, "prompt_seconds": gen.prompt_seconds,
            "prompt_roles": role_summaries(gen.prompt_tokens), "n_prompt": len(gen.prompt_tokens),
            "tokens": [_token_state(t) for t in gen.tokens]}


def generation_from(data: Mapping[str, Any]) -> Generation:
    gen = Generation("", data.get("mode", "reply"), data.get("writer"), data.get("text", ""),
                     data.get("stop_reason", ""), [_token_from(t) for t in data.get("tokens", [])])
    gen.seconds, gen.prompt_seconds = data.get("seconds", 0.0), data.get("prompt_seconds", 0.0)
    return gen


def session_state(session: Session) -> dict[str, Any]:
    info = session.bench.info
    log = session.io.log
    return {"format": FORMAT, "version": VERSION, "updated": datetime.now().isoformat(timespec="seconds"),
            "model": info.name, "model_spec": session.engine.model_spec, "template": session.bench.template.name,
            "template_spec": session.engine.template_spec, "profile": session.settings.profile,
            "settings": session.params.to_dict(), "ui": dict(session.prefs),
            "engine": {**session.engine.saved_state(), "context_overflow": session.settings.context_overflow},
            "log": str(log.path) if log is not None else None,
            "messages": session.conversation.to_dicts(), "tree": session.tree.to_dict(),
            "generations": [generation_state(g) for g in session.transcript.generations]}


def saved_engine(data: Mapping[str, Any]) -> dict[str, Any]:
    """The workbench options a saved session holds (None where it holds nothing usable)."""
    engine = data.get("engine") if isinstance(data.get("engine"), dict) else {}
    variables = engine.get("variables")
    backend = engine.get("backend")
    overflow = engine.get("context_overflow")
    return {"model": _str_or_none(data.get("model_spec")), "template": _str_or_none(data.get("template_spec")),
            "backend": backend if isinstance(backend, str) and "://" in backend else None,
            "variables": variables if isinstance(variables, dict) else None,
            "literal_content": engine.get("literal_content") if isinstance(engine.get("literal_content"), bool) else None,
            "context_overflow": overflow if overflow in OVERFLOW_POLICIES else None}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def safe_log_path(value: Any) -> Path | None:
    """A saved session's log, only where harness keeps logs: a file never decides where harness
    writes (a shared session naming ~/.bashrc is resumed with a fresh log)."""
    if not isinstance(value, str) or not value:
        return None
    base = logs_dir().resolve()
    try:
        if Path(value).is_symlink():
            return None
        path = Path(value).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path if path.parent == base and path.suffix == ".jsonl" else None


def saved_id(data: Mapping[str, Any], path: Path) -> str:
    """A resumed session's id: the file's own when it is a plain id, else the file name's."""
    value = data.get("id")
    return value if isinstance(value, str) and re.fullmatch(r"[\w.-]{1,80}", value) else path.stem


def read_session(path: Path) -> dict[str, Any]:
    from harness.untrusted.inputs import parse_json, read_text

    text = read_text(path, what="the session", error=StorageError, limit=MAX_SESSION_BYTES)
    try:
        data = parse_json(text)
    except ValueError as exc:
        raise StorageError(f"cannot read the session: {exc.__class__.__name__}", where=str(path),
                           hint="is this a harness session file?") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StorageError("not a harness session file", where=str(path))
    check_session(data, str(path))
    return data


@dataclass(frozen=True)
class Restored:
    """The parts of a saved session a new session is built from (the model is opened apart)."""

    trees: TreeHistory
    transcript: Transcript
    settings: TurnSettings
    ui: Mapping[str, Any]
    notes: tuple[str, ...]  # what could not be restored


def restore(data: Mapping[str, Any], *, context_overflow: str = OVERFLOW_ERROR) -> Restored:
    """A saved session's tree, turns and settings (checked by :func:`read_session`)."""
    try:
        tree = Tree.from_dict(data["tree"])
        generations = [generation_from(g) for g in data.get("generations", [])]
        params, notes = restore_settings(data.get("settings") or {})
        profile = data.get("profile")
        settings = TurnSettings(params, context_overflow, profile if isinstance(profile, str) else None)
    except (KeyError, TypeError, ValueError, HarnessError) as exc:
        raise StorageError(f"the session file is damaged: {exc}") from None
    return Restored(TreeHistory(tree), Transcript(generations), settings, dict(data.get("ui") or {}), notes)


def restore_settings(saved: Mapping[str, Any]) -> tuple[SamplingParams, tuple[str, ...]]:
    """Saved sampling settings (a session's, a log's) checked one by one — an old file may hold
    a seed of -7: the valid ones, and a note for each left at its default."""
    from harness.errors import CommandError

    params, notes = SamplingParams(), []
    for name, value in saved.items():
        try:
            params = params.with_values({name: value})
        except CommandError:
            notes.append(f"saved setting {name}={visible_line(repr(value))[:60]} is not valid; using the default")
    return params, tuple(notes)


@dataclass(frozen=True)
class SessionRow:
    id: str
    when: str
    messages: int
    title: str
    path: Path


def list_sessions() -> list[SessionRow]:
    """Saved sessions, oldest first."""
    rows = []
    for path in sorted(sessions_dir().glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            data = read_session(path)
        except StorageError:
            continue
        messages = data.get("messages") or []
        first = next((m.get("content", "") for m in messages if m.get("role") == "user"), "")
        rows.append(SessionRow(path.stem, str(data.get("updated", "")), len(messages),
                               " ".join(str(first).split())[:50], path))
    return rows


def find_session(spec: str | None) -> Path:
    """A session file by path, ID or ID prefix; the newest one for None or ""."""
    if spec:
        path = Path(spec).expanduser()
        if path.is_file():
            return path
        exact = sessions_dir() / f"{spec}.json"
        if exact.is_file():
            return exact
        matches = sorted(sessions_dir().glob(f"{spec}*.json"))
        if len(matches) == 1:
            return matches[0]
        raise StorageError(f"no session '{spec}'" if not matches else f"'{spec}' matches {len(matches)} sessions",
                           where=str(sessions_dir()), hint="/sessions lists them")
    rows = list_sessions()
    if not rows:
        raise StorageError("no saved session to resume", where=str(sessions_dir()),
                           hint="start without --resume")
    return rows[-1].path


# -- exports -------------------------------------------------------------------------------------
def export_json(session: Session) -> str:
    return json.dumps(session_state(session), ensure_ascii=False, indent=2, default=str)


def _stats_line(roles: Mapping[str, Mapping[str, Any]]) -> str:
    parts = []
    for role, s in roles.items():
        h = s.get("mean_entropy_bits")
        b = s.get("entropy_bounds_bits")
        within = f" in [{_f(b[0])}, {_f(b[1])}]" if b else ""
        parts.append(f"{role} {s['tokens']} tok" + (f", H̄ {h:.2f}{within} bits" if h is not None else ""))
    return "; ".join(parts)


def export_markdown(session: Session) -> str:
    info = session.bench.info
    lines = ["# harness chat", "",
             f"- model: `{info.name}`, template: `{session.bench.template.name}`, eos: `{session.params.eos}`",
             f"- sampling: `{json.dumps(session.params.to_dict(), default=str)}`", ""]
    for i, node in enumerate(session.tree.path()):
        assert node.message is not None
        siblings = session.tree.siblings(i)
        alt = f" (alternative {siblings.index(node.id) + 1} of {len(siblings)})" if len(siblings) > 1 else ""
        lines += [f"## {i} · {node.message.role}{alt}", "", node.message.text, ""]
        gen_index = node.meta.get("gen")
        if isinstance(gen_index, int) and 0 <= gen_index < len(session.transcript):
            gen = session.transcript[gen_index]
            lines += [f"> generated ({gen.mode}, {gen.stop_reason}, {len(gen.tokens)} tokens): "
                      f"{_stats_line(role_summaries(gen.tokens))}", ""]
    lines += ["## Per-role statistics (every generated token of the session)", "",
              "| role | tokens | mean entropy (bits) | mean surprisal (bits) | perplexity |",
              "|---|---|---|---|---|"]
    for role, s in session.transcript.roles().items():
        b = s.get("entropy_bounds_bits")
        within = f" in [{_f(b[0])}, {_f(b[1])}]" if b else ""
        lines.append(f"| {role} | {s['tokens']} | {_f(s['mean_entropy_bits'])}{within} | "
                     f"{_f(s['mean_surprisal_bits'])} | {_f(s['perplexity'])} |")
    return "\n".join(lines) + "\n"


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"
