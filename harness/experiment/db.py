"""The experiment database (stdlib sqlite3, WAL): runs, cells, turns and every token.

A run is one experiment's matrix; its cells are inserted ``pending`` when the run is created and
each becomes ``done`` (or ``error``) in one transaction together with its turn and all of its
tokens, so an interrupted cell leaves nothing behind and rerunning continues where it stopped.
Token rows hold exactly what ``TokenRecord.to_dict`` gives (the numbers the JSON shows), so the
database and the JSON agree to the last digit. The math of summaries lives in
harness.experiment.summary; this module only stores and loads.

Schema 2 added ``cells.backend`` (the server URL that ran a cell, NULL for a local model); a
schema-1 database is upgraded in place when opened (one ``ALTER TABLE``, old cells NULL).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import StorageError
from harness.experiment.past_eos import class_counts, classify
from harness.experiment.spec import PAST_EOS, Cell, Experiment, condition_label
from harness.experiment.summary import (
    METRICS,
    SummaryRow,
    TokenStat,
    condition_diversity,
    condition_refusals,
    summarize_tokens,
)

SCHEMA_VERSION = 4  # 3: runs' decode path; 4: tokens' entropy and end-of-turn bounds (a server's top-k)
READABLE_VERSIONS = (0, 1, 2, 3, SCHEMA_VERSION)  # 0: a new file; 1-3: upgraded in place
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    experiment_path TEXT NOT NULL,
    digest TEXT NOT NULL,
    spec TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    cells_total INTEGER NOT NULL,
    decode TEXT
);
CREATE INDEX IF NOT EXISTS runs_digest ON runs(digest);
CREATE TABLE IF NOT EXISTS cells (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    ord INTEGER NOT NULL,
    key TEXT NOT NULL,
    model TEXT NOT NULL, template TEXT NOT NULL, mode TEXT NOT NULL, eos TEXT NOT NULL,
    sampling TEXT NOT NULL, seed INTEGER NOT NULL, conversation TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'error')),
    error TEXT,
    seconds REAL,
    finished_at TEXT,
    backend TEXT,
    UNIQUE (run_id, key)
);
CREATE INDEX IF NOT EXISTS cells_run_status ON cells(run_id, status);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    cell_id INTEGER NOT NULL REFERENCES cells(id),
    idx INTEGER NOT NULL,
    mode TEXT NOT NULL,
    writer TEXT,
    prompt TEXT NOT NULL,
    text TEXT NOT NULL,
    stop_reason TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    generated_tokens INTEGER NOT NULL,
    prompt_seconds REAL,
    seconds REAL,
    UNIQUE (cell_id, idx)
);
CREATE TABLE IF NOT EXISTS tokens (
    turn_id INTEGER NOT NULL REFERENCES turns(id),
    scope TEXT NOT NULL CHECK (scope IN ('prompt', 'generated')),
    pos INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    piece TEXT NOT NULL,
    bytes TEXT,
    role TEXT NOT NULL,
    entropy_bits REAL,
    surprisal_bits REAL,
    eot_prob REAL,
    varentropy_bits2 REAL,
    sampling_entropy_bits REAL,
    truncated INTEGER NOT NULL DEFAULT 0,
    tail_mass REAL,
    top TEXT NOT NULL,
    entropy_lo REAL,
    entropy_hi REAL,
    eot_prob_lo REAL,
    eot_prob_hi REAL,
    PRIMARY KEY (turn_id, scope, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS choices (
    turn_id INTEGER PRIMARY KEY REFERENCES turns(id),
    answer TEXT NOT NULL,
    chosen TEXT NOT NULL,
    confidence REAL NOT NULL,
    correct INTEGER NOT NULL,
    letter_mass REAL NOT NULL,
    probs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_role ON tokens(role);
CREATE INDEX IF NOT EXISTS tokens_scope_role ON tokens(scope, role);
"""
_TOKEN_COLUMNS = ("turn_id, scope, pos, token_id, piece, bytes, role, entropy_bits, surprisal_bits, "
                  "eot_prob, varentropy_bits2, sampling_entropy_bits, truncated, tail_mass, top, "
                  "entropy_lo, entropy_hi, eot_prob_lo, eot_prob_hi")
# a truncated token's bounds (harness.stats.topk); entropy_hi NULL: unbounded (vocabulary unknown)
_BOUND_COLUMNS = (("entropy_bounds_bits", "entropy_lo", "entropy_hi"), ("eot_prob_bounds", "eot_prob_lo", "eot_prob_hi"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) an experiment database in WAL mode, autocommit."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(target), isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in READABLE_VERSIONS:
            raise StorageError(f"database schema version {version}, this harness reads {SCHEMA_VERSION}",
                               where=str(target), hint="use another --db")
        conn.executescript(SCHEMA)
        _migrate(conn)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the experiment database: {exc}", where=str(target),
                           hint="pass --db PATH to a writable SQLite file") from None
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older database up to this schema (columns added since schema 1)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
    if "backend" not in columns:
        conn.execute("ALTER TABLE cells ADD COLUMN backend TEXT")
    if "decode" not in {row[1] for row in conn.execute("PRAGMA table_info(runs)")}:
        conn.execute("ALTER TABLE runs ADD COLUMN decode TEXT")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tokens)")}
    for _, lo, hi in _BOUND_COLUMNS:
        for column in (lo, hi):
            if column not in columns:
                conn.execute(f"ALTER TABLE tokens ADD COLUMN {column} REAL")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (KeyboardInterrupt included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_run(conn: sqlite3.Connection, exp: Experiment, cells: Sequence[Cell], *,
             force_new: bool = False, decode: dict[str, Any] | None = None) -> tuple[int, bool]:
    """(run id, resumed): the newest run of this exact experiment on these decode paths (`decode`:
    model label -> settings, part of the digest), or a new one with every cell pending."""
    digest = exp.digest(decode)
    if not force_new:
        row = conn.execute("SELECT id FROM runs WHERE digest = ? ORDER BY id DESC LIMIT 1", (digest,)).fetchone()
        if row is not None:
            return int(row[0]), True
    spec = json.dumps(exp.canonical(decode), sort_keys=True, ensure_ascii=False)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO runs (name, experiment_path, digest, spec, harness_version, status, created_at,"
            " updated_at, cells_total) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (exp.name, exp.path, digest, spec, __version__, _now(), _now(), len(cells)))
        run_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO cells (run_id, ord, key, model, template, mode, eos, sampling, seed, conversation,"
            " params, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            [(run_id, i, c.key, c.model, c.template, c.mode.label, c.eos, c.sampling, c.seed, c.conversation,
              json.dumps(c.params.to_dict(), sort_keys=True)) for i, c in enumerate(cells)])
    return run_id, False


def record_decode_path(conn: sqlite3.Connection, run_id: int, label: str, path: dict[str, Any]) -> None:
    """Remember a model's decode path with its invariance verdict (as found when it was loaded)."""
    row = conn.execute("SELECT decode FROM runs WHERE id = ?", (run_id,)).fetchone()
    held = _json_object(row[0] if row else None)
    held[label] = path
    with transaction(conn):
        conn.execute("UPDATE runs SET decode = ? WHERE id = ?", (json.dumps(held, sort_keys=True), run_id))


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def cell_status(conn: sqlite3.Connection, run_id: int) -> dict[str, str]:
    """Cell key -> status for a run."""
    return dict(conn.execute("SELECT key, status FROM cells WHERE run_id = ?", (run_id,)).fetchall())


def set_run_status(conn: sqlite3.Connection, run_id: int, status: str) -> None:
    conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?", (status, _now(), run_id))


def _token_row(turn_id: int, scope: str, pos: int, d: dict[str, Any]) -> tuple[Any, ...]:
    return (turn_id, scope, pos, d["id"], d["piece"], d.get("bytes"), d["role"], d["entropy_bits"],
            d["surprisal_bits"], d["eot_prob"], d.get("varentropy_bits2"), d.get("sampling_entropy_bits"),
            1 if d.get("truncated") else 0, d.get("tail_mass"), json.dumps(d["top"], ensure_ascii=False),
            *(b for key, _, _ in _BOUND_COLUMNS for b in (d.get(key) or (None, None))))


def commit_cell(conn: sqlite3.Connection, run_id: int, key: str, turn: dict[str, Any],
                seconds: float, backend: str | None = None) -> bool:
    """Store a finished cell's turn and tokens and mark it done, all in one transaction.

    `turn` holds prompt, text, stop_reason, mode, writer, prompt_tokens and tokens (token dicts
    as ``TokenRecord.to_dict`` makes them), prompt_seconds and seconds. False when the cell was
    no longer pending (another process finished it first): nothing is written then. `backend`:
    the server URL that ran the cell (None: a local model).
    """
    with transaction(conn):
        cur = conn.execute("UPDATE cells SET status = 'done', seconds = ?, finished_at = ?, backend = ? "
                           "WHERE run_id = ? AND key = ? AND status = 'pending'",
                           (seconds, _now(), backend, run_id, key))
        if cur.rowcount != 1:
            return False  # nothing was written; the empty transaction commits
        cell_id = conn.execute("SELECT id FROM cells WHERE run_id = ? AND key = ?", (run_id, key)).fetchone()[0]
        cur = conn.execute(
            "INSERT INTO turns (cell_id, idx, mode, writer, prompt, text, stop_reason, prompt_tokens,"
            " generated_tokens, prompt_seconds, seconds) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cell_id, turn["mode"], turn.get("writer"), turn["prompt"], turn["text"], turn["stop_reason"],
             len(turn["prompt_tokens"]), len(turn["tokens"]), turn.get("prompt_seconds"), turn.get("seconds")))
        turn_id = int(cur.lastrowid or 0)
        rows = [_token_row(turn_id, "prompt", i, d) for i, d in enumerate(turn["prompt_tokens"])]
        rows += [_token_row(turn_id, "generated", i, d) for i, d in enumerate(turn["tokens"])]
        conn.executemany(f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES ({', '.join('?' * 19)})", rows)
        if "choice" in turn:
            c = turn["choice"]
            conn.execute("INSERT INTO choices (turn_id, answer, chosen, confidence, correct, letter_mass, probs)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (turn_id, c["answer"], c["chosen"], c["confidence"],
                                                          int(c["correct"]), c["letter_mass"], json.dumps(c["probs"])))
        conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (_now(), run_id))
    return True


def fail_cell(conn: sqlite3.Connection, run_id: int, key: str, message: str,
              backend: str | None = None) -> None:
    """Mark a cell that cannot run (the template refuses the mode, the prompt overflows...)."""
    with transaction(conn):
        conn.execute("UPDATE cells SET status = 'error', error = ?, finished_at = ?, backend = ? "
                     "WHERE run_id = ? AND key = ? AND status = 'pending'",
                     (message, _now(), backend, run_id, key))


def resolve_run(conn: sqlite3.Connection, run_id: int | None, where: str) -> int:
    """`run_id` if it exists, else the newest run; a StorageError when there is none."""
    if run_id is None:
        row = conn.execute("SELECT max(id) FROM runs").fetchone()
        if row is None or row[0] is None:
            raise StorageError("the database holds no run", where=where, hint="run an experiment first")
        return int(row[0])
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        known = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")]
        raise StorageError(f"no run {run_id}", where=where, hint=f"runs: {', '.join(map(str, known)) or 'none'}")
    return run_id


def run_info(conn: sqlite3.Connection, run_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT id, name, experiment_path, digest, status, created_at, updated_at, cells_total,"
                       " harness_version, decode, spec FROM runs WHERE id = ?", (run_id,)).fetchone()
    keys = ("id", "name", "experiment", "digest", "status", "created_at", "updated_at", "cells_total",
            "harness_version")
    info = dict(zip(keys, row[:-2], strict=True))
    info["decode"] = _json_object(row[-2])  # model label -> decode path and its invariance verdict
    batch = _json_object(row[-1]).get("batch")
    info["batch"] = batch if isinstance(batch, int) and not isinstance(batch, bool) else None
    info["cells"] = dict(conn.execute("SELECT status, count(*) FROM cells WHERE run_id = ? GROUP BY status",
                                      (run_id,)).fetchall())
    info["errors"] = [{"cell": k, "error": e} for k, e in conn.execute(
        "SELECT key, error FROM cells WHERE run_id = ? AND status = 'error' ORDER BY ord", (run_id,))]
    return info


def _condition(row: Sequence[Any]) -> dict[str, Any]:
    model, template, mode, eos, sampling, seed, conversation = row
    return {"model": model, "template": template, "mode": mode, "eos": eos, "sampling": sampling,
            "seed": seed, "conversation": conversation}


_CELL_FIELDS = "c.model, c.template, c.mode, c.eos, c.sampling, c.seed, c.conversation"


def _token_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A stored token back in ``TokenRecord.to_dict`` shape (same keys, same order)."""
    (token_id, piece, raw, role, ent, sur, eot, var, samp, truncated, tail, top, *bounds) = row
    out: dict[str, Any] = {"id": token_id, "piece": piece, "role": role}
    if raw is not None:
        out["bytes"] = raw
    out |= {"entropy_bits": ent, "surprisal_bits": sur, "eot_prob": eot, "varentropy_bits2": var,
            "top": json.loads(top)}
    if samp is not None:
        out["sampling_entropy_bits"] = samp
    if truncated:
        out["truncated"] = True
        out["tail_mass"] = tail
        for (key, _, _), lo, hi in zip(_BOUND_COLUMNS, bounds[::2], bounds[1::2], strict=True):
            if lo is not None:
                out[key] = [lo, hi]
    return out


def load_turns(conn: sqlite3.Connection, run_id: int, *, shown: int | None = None,
               prompt_tail: int | None = None, generated_cap: int | None = None) -> list[dict[str, Any]]:
    """Turn views of a run's finished cells. Tokens are read turn by turn for the first `shown`
    turns only (None: all), at most the last `prompt_tail` prompt tokens and the first
    `generated_cap` generated ones of each (None: all); ``prompt_total`` and ``generated_total``
    say how many there are, so a huge database costs what is shown, not what is stored."""
    turns: dict[int, dict[str, Any]] = {}
    for row in conn.execute(
            f"SELECT t.id, c.id, t.idx, t.text, t.stop_reason, {_CELL_FIELDS} FROM turns t "
            "JOIN cells c ON c.id = t.cell_id WHERE c.run_id = ? AND c.status = 'done' ORDER BY c.ord, t.idx",
            (run_id,)):
        condition = _condition(row[5:])
        turns[row[0]] = {"id": f"r{run_id}c{row[1]}t{row[2]}", "label": condition_label(condition),
                         "condition": condition, "text": row[3], "stop_reason": row[4],
                         "prompt_tokens": [], "tokens": [], "prompt_total": 0, "generated_total": 0}
    for turn_id, scope, count in conn.execute(
            "SELECT k.turn_id, k.scope, COUNT(*) FROM tokens k JOIN turns t ON t.id = k.turn_id"
            " JOIN cells c ON c.id = t.cell_id WHERE c.run_id = ? AND c.status = 'done'"
            " GROUP BY k.turn_id, k.scope", (run_id,)):
        if turn_id in turns:
            turns[turn_id]["prompt_total" if scope == "prompt" else "generated_total"] = count
    for turn_id in list(turns)[:shown]:
        turn = turns[turn_id]
        for scope, key, low, high in (
                ("prompt", "prompt_tokens", _low(turn["prompt_total"], prompt_tail), turn["prompt_total"]),
                ("generated", "tokens", 0, turn["generated_total"] if generated_cap is None else generated_cap)):
            turn[key] = [_token_dict(row) for row in conn.execute(
                "SELECT token_id, piece, bytes, role, entropy_bits, surprisal_bits, eot_prob, varentropy_bits2,"
                " sampling_entropy_bits, truncated, tail_mass, top, entropy_lo, entropy_hi, eot_prob_lo, eot_prob_hi"
                " FROM tokens"
                " WHERE turn_id = ? AND scope = ? AND pos >= ? AND pos < ? ORDER BY pos",
                (turn_id, scope, low, high))]
    return list(turns.values())


def _low(total: int, tail: int | None) -> int:
    return 0 if tail is None else max(0, total - tail)


def token_stats(conn: sqlite3.Connection, run_id: int) -> list[TokenStat]:
    """Every stored token of a run's finished cells, reduced for the summary; a past-eos turn's
    tokens carry its class (harness.experiment.past_eos)."""
    turns: dict[int, tuple[str, str, str, bool]] = {}
    for row in conn.execute(f"SELECT t.id, t.prompt, {_CELL_FIELDS} FROM turns t JOIN cells c ON c.id = t.cell_id"
                            " WHERE c.run_id = ? AND c.status = 'done' ORDER BY c.ord, t.idx", (run_id,)):
        condition = _condition(row[2:])
        turns[row[0]] = (condition_label(condition, with_seed=False),
                         hashlib.sha256(row[1].encode("utf-8")).hexdigest(), condition["conversation"],
                         condition["mode"] == PAST_EOS)
    query = (f"SELECT k.turn_id, k.scope, k.role, {', '.join('k.' + m for m in METRICS)}, k.entropy_lo,"
             " k.entropy_hi, k.truncated, k.piece, k.top"
             " FROM tokens k JOIN turns t ON t.id = k.turn_id JOIN cells c ON c.id = t.cell_id"
             " WHERE c.run_id = ? AND c.status = 'done' ORDER BY c.ord, t.idx, k.scope, k.pos")
    generated: dict[int, list[tuple[str, str]]] = {}
    for turn_id, role, piece in conn.execute(
            "SELECT k.turn_id, k.role, k.piece FROM tokens k JOIN turns t ON t.id = k.turn_id"
            " JOIN cells c ON c.id = t.cell_id WHERE c.run_id = ? AND c.status = 'done'"
            " AND k.scope = 'generated' AND c.mode = ? ORDER BY k.turn_id, k.pos", (run_id, PAST_EOS)):
        generated.setdefault(turn_id, []).append((role, piece))
    classes = {turn: classify(tokens) for turn, tokens in generated.items()}
    out = []
    for row in conn.execute(query, (run_id,)):  # streamed: a token's top list is read and let go
        label, prompt_key, conversation, _ = turns[row[0]]
        lo, hi, truncated = row[-5:-2]
        bounds = (lo, math.inf if hi is None else hi) if truncated and lo is not None else None
        out.append(TokenStat(label, row[0], prompt_key, row[1], row[2], tuple(row[3:-5]), conversation,
                             _top1(row[-2], row[-1]), classes.get(row[0], ""), bounds))
    return out


def _top1(piece: str, top: str) -> tuple[float, bool] | None:
    """(top-1 probability, the token was the top-1) from a stored token; the top list names
    tokens by their text, so a token counts as the top-1 when its text is the top-1's."""
    first = json.loads(top)[:1] if top != "[]" else []
    if not first or first[0][1] is None:
        return None
    return float(first[0][1]), first[0][0] == piece


def turn_texts(conn: sqlite3.Connection, run_id: int) -> list[tuple[int, str, str, str]]:
    """(turn id, condition label without seed, conversation, text) of every finished turn of a run."""
    return [(row[0], condition_label(_condition(row[2:]), with_seed=False), row[8], row[1]) for row in conn.execute(
        f"SELECT t.id, t.text, {_CELL_FIELDS} FROM turns t JOIN cells c ON c.id = t.cell_id"
        " WHERE c.run_id = ? AND c.status = 'done' ORDER BY c.ord, t.idx", (run_id,))]


def choice_rows(conn: sqlite3.Connection, run_id: int) -> list[dict[str, Any]]:
    """Per condition of multiple-choice cells: items, accuracy, ECE and reliability bins."""
    from harness.experiment.choice import choice_summary

    return choice_summary([(condition_label(_condition(row[3:]), with_seed=False), row[0], bool(row[1]), row[2])
                           for row in conn.execute(
        f"SELECT h.confidence, h.correct, h.letter_mass, {_CELL_FIELDS} FROM choices h"
        " JOIN turns t ON t.id = h.turn_id JOIN cells c ON c.id = t.cell_id"
        " WHERE c.run_id = ? AND c.status = 'done' ORDER BY c.ord", (run_id,))])


def summary(conn: sqlite3.Connection, run_id: int) -> list[SummaryRow]:
    """The summary rows; generated rows carry their condition's diversity across seeds and, for
    past-eos conditions, how many turns continued the conversation or started a new one (each
    class's own rows, ``CONDITION · CLASS``, carry the diversity of that class's texts)."""
    stats = token_stats(conn, run_id)
    classes: dict[str, dict[int, str]] = {}
    for t in stats:
        if t.subset:
            classes.setdefault(t.condition, {})[t.turn] = t.subset
    texts = []
    for turn, label, conversation, text in turn_texts(conn, run_id):
        texts.append((label, conversation, text))
        if turn in classes.get(label, {}):
            texts.append((f"{label} · {classes[label][turn]}", conversation, text))
    div, refusals = condition_diversity(texts), condition_refusals(texts)
    past = {label: class_counts(turns.values()) for label, turns in classes.items()}
    return [replace(r, diversity=div.get(r.condition), past_eos=past.get(r.condition),
                    refusal=refusals.get(r.condition))
            if r.scope == "generated" else r for r in summarize_tokens(stats)]


def _read(db_path: str | Path, run_id: int | None):
    if not Path(db_path).expanduser().is_file():
        raise StorageError("no such experiment database", where=str(db_path))
    conn = connect(db_path)
    return conn, resolve_run(conn, run_id, str(db_path))


def report_turns(db_path: str | Path, run_id: int | None = None) -> list[dict[str, Any]]:
    """Turn views of a run (default: the newest) for the report: id, label, condition, text,
    stop_reason, prompt_tokens and tokens (``TokenRecord.to_dict`` shape). JSON-serialisable."""
    conn, run = _read(db_path, run_id)
    try:
        return load_turns(conn, run)
    finally:
        conn.close()
