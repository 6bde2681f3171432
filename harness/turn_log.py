"""Chat logs: one JSON line per turn, flushed and fsynced as soon as the turn ends.

A crash loses at most the turn in flight; a line cut short by a crash is skipped on reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import StorageError
from harness.paths import logs_dir


def default_log_path() -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return logs_dir() / f"chat-{stamp}-{os.getpid()}.jsonl"


class TurnLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot open the log: {exc.strerror or exc}", where=str(self.path),
                               hint="pass --log PATH somewhere writable") from None

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        try:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise StorageError(f"cannot write the log: {exc.strerror or exc}", where=str(self.path)) from None

    def close(self) -> None:
        self._file.close()


def read_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete turn of a log; a torn last line (crash mid-write) is skipped."""
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    turn = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(turn, dict):
                    yield turn
    except OSError as exc:
        raise StorageError(f"cannot read the log: {exc.strerror or exc}", where=str(path)) from None


def latest_log() -> Path | None:
    logs = sorted(logs_dir().glob("chat-*.jsonl"), key=lambda p: p.stat().st_mtime)
    return logs[-1] if logs else None


def resume_messages(path: str | None):
    """(log path, conversation after its last complete turn) — for `harness chat --resume`."""
    from harness.prompt.conversation import Conversation

    target = Path(path).expanduser() if path else latest_log()
    if target is None:
        raise StorageError("no chat log to resume", where=str(logs_dir()),
                           hint="pass --resume LOG, or start without --resume")
    turns = list(read_log(target))
    if not turns:
        raise StorageError("the log holds no complete turn", where=str(target))
    messages = turns[-1].get("messages") or []
    if not isinstance(messages, list):
        raise StorageError("the last turn's 'messages' is not a list", where=str(target),
                           hint="is this a harness chat log?")
    return target, Conversation.from_dicts(messages, where=str(target))
