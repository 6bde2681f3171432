"""The REPL's input history on disk, tolerant of a full or read-only disk: a failed write
becomes one notice and the history goes on in memory, instead of prompt_toolkit's
"Press ENTER to continue" after every line."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable

from prompt_toolkit.history import FileHistory

MAX_HISTORY_BYTES = 64 * 2**20


class TolerantFileHistory(FileHistory):
    def __init__(self, filename: str, on_failure: Callable[[OSError], None]):
        super().__init__(filename)
        self.on_failure = on_failure
        self.failed = False

    def load_history_strings(self) -> Iterable[str]:
        """The file's entries, if it is a regular file of sensible size (not /dev/zero, not 5 GB)."""
        try:
            info = os.stat(self.filename)
        except OSError:
            return []
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_HISTORY_BYTES:
            return []
        try:
            return list(super().load_history_strings())
        except OSError:
            return []

    def store_string(self, string: str) -> None:
        if self.failed:
            return  # kept in memory by History.append_string; the disk said no once already
        try:
            super().store_string(string)
        except OSError as exc:
            self.failed = True
            self.on_failure(exc)
