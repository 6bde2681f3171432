"""Opening someone else's experiment database to read it (``summary``, ``report``).

A database file is data and may be hostile: it is opened read-only (``mode=ro``: the file, its
journal mode and ``user_version`` stay as they were; ``immutable`` when no writer has a -wal
beside it, so not even -wal/-shm files appear), with ``trusted_schema=OFF``, and refused
unless its tables are harness's own — no views, no triggers, no generated or unknown columns
(a generated column is SQL the file runs on every read: ``printf('%.*c', 900000000, 'x')``
allocates gigabytes). Queries run under a progress handler that ends them at a deadline or on
Ctrl-C, and SQLite's heap is capped, so reading costs bounded time and memory.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from harness.errors import StorageError
from harness.experiment.db import SCHEMA, SCHEMA_VERSION

READ_DEADLINE_S = 600.0
HEAP_LIMIT = 1024 * 2**20
_OPCODES_PER_CHECK = 20_000


def _expected() -> dict[str, set[str]]:
    memory = sqlite3.connect(":memory:")
    try:
        memory.executescript(SCHEMA)
        tables = [r[0] for r in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {row[1] for row in memory.execute(f"PRAGMA table_xinfo({t})")} for t in tables}
    finally:
        memory.close()


def check_schema(conn: sqlite3.Connection, where: str) -> None:
    """StorageError unless the database holds harness's tables and nothing that runs code."""
    def refuse(problem: str) -> StorageError:
        return StorageError(f"not a harness experiment database: {problem}", where=where,
                            hint="give the --db of a harness run")

    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise refuse(f"schema version {version}, this harness reads {SCHEMA_VERSION}"
                     + (" (run it once with harness run to upgrade it)" if 0 < version < SCHEMA_VERSION else ""))
    expected = _expected()
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master"):
        if kind not in ("table", "index"):
            raise refuse(f"it has a {kind} '{name}'")
        if kind == "table" and name not in expected:
            raise refuse(f"it has a table '{name}'")
    for table, columns in expected.items():
        rows = conn.execute(f"PRAGMA table_xinfo({table})").fetchall()
        if not rows:
            raise refuse(f"it has no table '{table}'")
        found = {row[1] for row in rows}
        if found != columns:
            raise refuse(f"table '{table}' has columns {sorted(found ^ columns)} harness does not know")
        if any(row[6] != 0 for row in rows):  # hidden: 2 and 3 are generated columns
            raise refuse(f"table '{table}' has generated columns")
        _check_values(conn, table, rows, refuse)


_KINDS = {"INTEGER": ("integer", "null"), "REAL": ("real", "integer", "null"), "TEXT": ("text", "null")}


def _check_values(conn: sqlite3.Connection, table: str, columns: list, refuse) -> None:
    """Every value of the declared type (SQLite stores anything anywhere), and `top` JSON lists:
    one scan per table, under the progress handler's bounds."""
    tests = [f"typeof({row[1]}) NOT IN ({', '.join(repr(k) for k in _KINDS[row[2].upper()])})"
             for row in columns if row[2].upper() in _KINDS]
    if table == "tokens":
        tests.append("json_valid(top) = 0 OR json_type(top) != 'array'")
    if tests and conn.execute(f"SELECT 1 FROM {table} WHERE {' OR '.join(tests)} LIMIT 1").fetchone():
        raise refuse(f"table '{table}' holds values of the wrong type")


def open_readonly(path: str | Path, *, deadline_s: float = READ_DEADLINE_S) -> sqlite3.Connection:
    """A read-only connection to a checked harness database (StorageError otherwise)."""
    target = Path(path).expanduser().resolve()
    where = str(target)
    if not target.is_file():
        raise StorageError("no such experiment database", where=where, hint="give the --db of a run")
    # No -wal beside it: no writer is at work, and `immutable` reads the file without creating
    # -wal/-shm. With one, a run may be writing: read through it (the files exist already).
    idle = not target.with_name(target.name + "-wal").exists()
    uri = f"file:{urllib.parse.quote(str(target))}?mode=ro" + ("&immutable=1" if idle else "")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)
    except sqlite3.Error as exc:
        raise read_error(exc, where) from None
    try:
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA query_only=ON")
        conn.execute(f"PRAGMA hard_heap_limit={HEAP_LIMIT}")
        conn.set_progress_handler(_bounded(time.monotonic() + deadline_s, _ctrl_c_flag()), _OPCODES_PER_CHECK)
        check_schema(conn, where)
    except sqlite3.Error as exc:
        conn.close()
        raise read_error(exc, where) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _ctrl_c_flag() -> Callable[[], bool]:
    """True once SIGINT arrived (the handler only notes it; the query stops at the next check)."""
    flag = threading.Event()
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)

        def note(signum, frame):  # noqa: ARG001
            flag.set()
            signal.signal(signal.SIGINT, previous)  # a second Ctrl-C acts as usual

        signal.signal(signal.SIGINT, note)
    return flag.is_set


def _bounded(ends: float, interrupted: Callable[[], bool]) -> Callable[[], int]:
    def check() -> int:
        return 1 if interrupted() or time.monotonic() > ends else 0  # non-zero aborts the query
    return check


def read_error(exc: sqlite3.Error, where: str) -> StorageError:
    """A query that failed, ran out of time or memory, or was interrupted, as one line."""
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT:
        return StorageError("reading the database was stopped (deadline or Ctrl-C)", where=where,
                            hint="is the file a harness database of a sensible size?")
    return StorageError(f"cannot read the database: {exc.__class__.__name__}", where=where,
                        hint="is this a harness experiment database?")
