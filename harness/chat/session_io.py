"""Where a session goes on disk: its turn log (one JSON line per turn) and its autosave file.

The one owner of both. A failure to write either is shown once as an error notice and never
costs the conversation: autosave turns itself off, a turn that cannot be logged stays in the
session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.chat.events import Emit, Notice
from harness.errors import StorageError


class TurnLog(Protocol):
    """A log of turns (harness.turn_log.TurnLog)."""

    path: Path

    def append(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class SessionFile(Protocol):
    """A session's autosave file (harness.chat.saved.SessionFile)."""

    id: str
    path: Path

    def save(self, session: Any) -> None: ...


class SessionIO:
    def __init__(self, log: TurnLog | None = None, autosave: SessionFile | None = None):
        self._log = log
        self._autosave = autosave

    @property
    def log(self) -> TurnLog | None:
        return self._log

    @property
    def autosave(self) -> SessionFile | None:
        return self._autosave

    def attach_log(self, log: TurnLog | None) -> None:
        self._log = log

    def save(self, session: Any, emit: Emit) -> None:
        autosave = self._autosave
        if autosave is not None and not _written(lambda: autosave.save(session), emit,
                                                 "autosave is off for this session"):
            self._autosave = None

    def log_turn(self, record: Mapping[str, Any], emit: Emit) -> None:
        log = self._log
        if log is not None:
            _written(lambda: log.append(record), emit, "the turn is kept in this session but not logged")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


def _written(write: Callable[[], None], emit: Emit, consequence: str) -> bool:
    """Run a write; a StorageError is one error notice saying what follows from it."""
    try:
        write()
    except StorageError as exc:
        emit(Notice(f"{exc}; {consequence}", "error"))
        return False
    return True
