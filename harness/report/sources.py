"""What a report is made of: turn views and summary rows, from an experiment database or a
session log.

A path ending in .sqlite / .db, or a file starting with SQLite's magic header, is read as an
experiment database (harness.experiment.db's report loaders); anything else as a JSONL session
log. A log line is one generated turn; it keeps the prompt text but not the prompt's tokens, so
a log's turn views have empty ``prompt_tokens`` and a ``prompt`` field instead, and its summary
covers generated tokens only (one condition per model · template · mode · EOS policy).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import CommandError, StorageError
from harness.experiment.spec import condition_label
from harness.experiment.summary import METRICS, TokenStat, summarize_tokens

SQLITE_MAGIC = b"SQLite format 3\x00"
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")


@dataclass(frozen=True)
class ReportInput:
    kind: str  # "db" or "log"
    turns: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    title: str
    detail: str  # the source in one line
    choices: tuple[dict[str, Any], ...] = ()  # multiple-choice results per condition (a run with items)


def is_database(path: Path) -> bool:
    if path.suffix.lower() in DB_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def load_report_input(path: str | Path, run_id: int | None = None, *, shown: int | None = None) -> ReportInput:
    """The report's input; of a database, tokens only of the first `shown` turns (default MAX_TURNS)."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise StorageError("no such experiment database or log", where=str(source),
                           hint="give an experiment .sqlite or a chat .jsonl log")
    if is_database(source):
        return _from_database(source, run_id, shown)
    if run_id is not None:
        raise CommandError("--run applies to an experiment database, not to a log", where=str(source))
    return _from_log(source)


def _from_database(source: Path, run_id: int | None, shown: int | None) -> ReportInput:
    import sqlite3

    from harness.experiment.db import choice_rows, load_turns, resolve_run, run_info, summary
    from harness.experiment.db_guard import open_readonly, read_error
    from harness.report.html import MAX_GENERATED_TOKENS, MAX_PROMPT_TOKENS, MAX_TURNS

    conn = open_readonly(source)  # someone else's file: read-only, checked, bounded
    try:
        run = resolve_run(conn, run_id, str(source))
        info = run_info(conn, run)
        turns = load_turns(conn, run, shown=MAX_TURNS if shown is None else shown, prompt_tail=MAX_PROMPT_TOKENS,
                           generated_cap=MAX_GENERATED_TOKENS)  # what the page can show, no more
        rows = [row.to_dict() for row in summary(conn, run)]
        choices = tuple(choice_rows(conn, run))
    except sqlite3.Error as exc:
        raise read_error(exc, str(source)) from None
    finally:
        conn.close()
    cells = ", ".join(f"{n} {status}" for status, n in sorted(info["cells"].items()))
    return ReportInput("db", turns, rows,
                       title=f"{info['name']} · run {run}",
                       detail=f"{source} · run {run} ({info['status']}; {cells})", choices=choices)


def _from_log(source: Path) -> ReportInput:
    from harness.turn_log import read_log

    try:
        records = [r for r in read_log(source) if isinstance(r, dict) and isinstance(r.get("tokens"), list)]
    except UnicodeDecodeError:
        raise StorageError("not an experiment database nor a UTF-8 JSONL log", where=str(source)) from None
    if not records:
        raise StorageError("the log holds no complete turn", where=str(source),
                           hint="give a chat .jsonl log or an experiment .sqlite")
    for i, record in enumerate(records):
        bad = next((k for k, t in enumerate(record["tokens"]) if not _token_ok(t)), None)
        if bad is not None:
            raise StorageError(f"turn {i + 1}, token {bad}: not a token of harness's log format",
                               where=str(source), hint="is this a harness chat log?")
    turns = [log_turn(i, r, source.stem) for i, r in enumerate(records)]
    return ReportInput("log", turns, log_summary(turns), title=source.name,
                       detail=f"{source} · session log")


_NUMBERS = ("id", "entropy_bits", "surprisal_bits", "eot_prob", "varentropy_bits2", "sampling_entropy_bits",
            "tail_mass")


def _token_ok(token: Any) -> bool:
    """A logged token as the report reads it: numbers where numbers go, texts, a top list."""
    if not isinstance(token, dict):
        return False
    numbers_ok = all(token.get(k) is None or (isinstance(token[k], int | float) and not isinstance(token[k], bool))
                     for k in _NUMBERS)
    top = token.get("top", [])
    top_ok = isinstance(top, list) and all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
        and (e[1] is None or isinstance(e[1], int | float)) for e in top)
    return numbers_ok and top_ok and isinstance(token.get("piece", ""), str) and isinstance(token.get("role", ""), str)


def log_turn(index: int, record: dict[str, Any], name: str) -> dict[str, Any]:
    """One log line as a turn view (the shape of experiment_db.report_turns, plus `prompt`)."""
    settings = record.get("settings") or {}
    condition = {"model": record.get("model", "?"), "template": record.get("template", "?"),
                 "mode": record.get("mode", "?"), "eos": settings.get("eos", "?"), "sampling": "log",
                 "seed": settings.get("seed"), "conversation": name}
    return {"id": f"log{index}", "label": condition_label(condition), "condition": condition,
            "text": record.get("text", ""), "stop_reason": record.get("stop_reason", ""),
            "prompt": record.get("prompt", ""), "prompt_tokens": [], "tokens": record["tokens"]}


def _bounds(token: dict[str, Any]) -> tuple[float, float] | None:
    """A logged truncated token's entropy bounds (null hi: unbounded), if well formed."""
    b = token.get("entropy_bounds_bits")
    if not (token.get("truncated") and isinstance(b, list) and len(b) == 2 and isinstance(b[0], int | float)):
        return None
    hi = b[1] if isinstance(b[1], int | float) else math.inf
    return float(b[0]), float(hi)


def log_summary(turns: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per condition (seed pooled) × role summary rows of generated tokens, with the same
    turn-resampling intervals as an experiment's summary."""
    stats = []
    for n, turn in enumerate(turns):
        label = condition_label(turn["condition"], with_seed=False)
        prompt_key = hashlib.sha256(turn.get("prompt", "").encode("utf-8")).hexdigest()
        stats += [TokenStat(label, n, prompt_key, "generated", str(t.get("role", "?")),
                            tuple(t.get(m) for m in METRICS), entropy_bounds=_bounds(t)) for t in turn["tokens"]]
    return [row.to_dict() for row in summarize_tokens(stats)]
