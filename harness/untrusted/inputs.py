"""The one way harness reads a file it is handed, and parses JSON from outside.

- :func:`read_text` opens without blocking, checks that the path is a regular file (a FIFO
  would hang, ``/dev/zero`` never ends, a directory is a mistake), refuses it past a size limit
  before reading, reads at most that many bytes and decodes UTF-8; every failure is the caller's
  error class naming the file and what to do.
- :func:`inside` resolves a path an input file names (an experiment's ``file:`` entries) inside
  that file's folder: subfolders yes, ``..``, absolute paths and links out no.
- :func:`parse_json` is ``json.loads`` with nesting past a limit refused before parsing (a
  ``ValueError`` like any syntax error), so no reader meets a ``RecursionError``.

YAML has its own limits (:mod:`harness.yamlio`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

MAX_INPUT_BYTES = 64 * 2**20  # messages, experiments, profiles, presets, sessions: far past any real one
MAX_JSON_DEPTH = 100  # real messages, tool schemas and server replies nest a handful of levels


def short_path(path: str | os.PathLike[str], keep: int = 160) -> str:
    """A path for a one-line message: a very long one shortened in the middle."""
    text = str(path)
    return text if len(text) <= keep else f"{text[:keep // 2]}…{text[-keep // 2:]}"


def read_text(path: str | os.PathLike[str], *, what: str, error: type[Exception],
              limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the regular file `path`, at most `limit` bytes; else `error` (a
    HarnessError class) saying `what` could not be read, naming the file."""
    where = short_path(path)

    def fail(problem: str, hint: str | None = None) -> Exception:
        return error(f"cannot read {what}: {problem}", where=where, hint=hint)  # type: ignore[call-arg]

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise fail(exc.strerror or exc.__class__.__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise fail(f"it is {kind}", "give a file (not a directory, a FIFO or a device)")
        if info.st_size > limit:
            raise fail(f"it is {_size(info.st_size)}, over the limit of {_size(limit)}", "split or shorten it")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise fail(exc.strerror or exc.__class__.__name__) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise fail(f"it is over the limit of {_size(limit)}", "split or shorten it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n:,} bytes"


def inside(base: Path, name: str, *, allow_outside: bool = False) -> Path | None:
    """`name` (as an input file wrote it) resolved under the folder `base`; None when it leaves it
    (an absolute path, ``..``, a symbolic link out) unless `allow_outside`."""
    candidate = Path(name).expanduser() if allow_outside else Path(name)
    path = candidate if candidate.is_absolute() else base / candidate
    if allow_outside:
        return path
    if candidate.is_absolute() or ".." in candidate.parts:
        return None
    try:
        resolved, root = path.resolve(), base.resolve()
    except (OSError, RuntimeError):
        return None
    return path if resolved == root or root in resolved.parents else None


# strings (with their escapes) carry no structure; what is left of the text is brackets
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class TooDeep(ValueError):
    """JSON nested past the limit (a ValueError, so it is reported like a syntax error)."""


def json_depth(text: str) -> int:
    """How deeply `text` nests ``[`` and ``{`` (outside strings); linear, no recursion."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def parse_json(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)``; nesting deeper than `max_depth` raises :class:`TooDeep`."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if json_depth(text) > max_depth:
        raise TooDeep(f"nested more than {max_depth} levels deep")
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested more than {max_depth} levels deep") from None
