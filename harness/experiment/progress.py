"""A plain-text progress line with rate and ETA for long runs (stderr; no dependency).

On a terminal the line is redrawn in place with ``\\r``; otherwise (a log file, CI) a full line is
written at most every `every` seconds and at the end, so logs stay readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from harness.untrusted.terminal import is_terminal, write


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(done: int, total: int, ran: int, elapsed: float, note: str = "", width: int = 20) -> str:
    """`[#####.....] 12/54 cells  4.1 cells/min  ETA 10m15s  note`; the rate counts only cells run
    in this process (`ran`), not the ones a resumed run found already finished."""
    filled = int(width * done / total) if total else width
    bar = "#" * filled + "." * (width - filled)
    rate = ran / elapsed * 60.0 if elapsed > 0 and ran else 0.0
    eta = format_duration((total - done) / rate * 60.0) if rate > 0 else "?"
    line = f"[{bar}] {done}/{total} cells  {rate:.1f} cells/min  ETA {eta}"
    return f"{line}  {note}" if note else line


class Progress:
    def __init__(self, total: int, done: int, stream: TextIO, *, tty: bool | None = None,
                 every: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.total, self.done, self.ran = total, done, 0
        self.stream = stream
        self.tty = is_terminal(stream) if tty is None else tty
        self.every = every
        self.clock = clock
        self.start = clock()
        self._last = -every
        self._width = 0

    def elapsed(self) -> float:
        return self.clock() - self.start

    def show(self, note: str = "") -> None:
        now = self.elapsed()
        line = progress_line(self.done, self.total, self.ran, now, note)
        if self.tty:
            pad = max(0, self._width - len(line))
            write(line + " " * pad, stream=self.stream, one_line=True, redraw=True, end="")
            self._width = len(line)
        elif now - self._last >= self.every or self.done == self.total:
            write(line, stream=self.stream, one_line=True, flush=True)
            self._last = now

    def advance(self, note: str = "") -> None:
        self.done += 1
        self.ran += 1
        self.show(note)

    def close(self) -> None:
        if self.tty and self._width:
            write(stream=self.stream, flush=True)
            self._width = 0
