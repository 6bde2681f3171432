"""Keys typed while the model streams: not echoed into the transcript, kept for the next prompt.

During a command the terminal leaves canonical mode with echo off (signals stay on, so Ctrl-C
still interrupts, and NOFLSH keeps it from discarding the typed keys); afterwards whatever was typed is read without blocking and becomes the text
the next prompt starts with. Escape sequences (arrow keys) are dropped.
"""

from __future__ import annotations

import os
import re
import select
from collections.abc import Iterator
from contextlib import contextmanager

ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|O.|.)?")


def clean(typed: str) -> str:
    """Typed keys as prompt text: escape sequences and control characters dropped, Enter kept
    as a newline (a line typed ahead with its Enter is sent, as a shell does)."""
    text = ESCAPES.sub("", typed).replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c for c in text if c == "\n" or c >= " " and c != "\x7f")


def next_input(typed: str) -> tuple[str, bool, str]:
    """(the next prompt's text, whether it is sent at once, what stays typed ahead): a line
    typed ahead with its Enter is sent; text without one waits in the prompt."""
    first, enter, rest = typed.partition("\n")
    return (first, True, rest) if enter else (typed, False, "")


@contextmanager
def held_keys(fd: int | None) -> Iterator[list[str]]:
    """Hold keys typed on terminal `fd` while the block runs; the list gets their text at the
    end. Does nothing (an empty list) when `fd` is not a terminal."""
    held: list[str] = []
    if fd is None or not os.isatty(fd):
        yield held
        return
    import termios

    old = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)
    quiet[3] |= termios.NOFLSH  # Ctrl-C interrupts the turn without discarding what was typed
    quiet[6][termios.VMIN], quiet[6][termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield held
    finally:
        data = b""
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        termios.tcsetattr(fd, termios.TCSANOW, old)
        held.append(clean(data.decode("utf-8", "replace")))
