"""The one way harness reads a file it is handed, and parses JSON from outside.

- :func:`read_text` (and :func:`read_lines`, for logs) opens without blocking, checks that the path is a regular file (a FIFO
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
from collections.abc import Iterator, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

MAX_INPUT_BYTES = 64 * 2**20  # messages, experiments, profiles, presets, sessions: far past any real one
MAX_JSON_DEPTH = 100  # real messages, tool schemas and server replies nest a handful of levels


def short_path(path: str | os.PathLike[str], keep: int = 160) -> str:
    """A path for a one-line message: a very long one shortened in the middle."""
    text = str(path)
    return text if len(text) <= keep else f"{text[:keep // 2]}…{text[-keep // 2:]}"


def _open_checked(path: str | os.PathLike[str], what: str, error: type[Exception], limit: int) -> int:
    """A descriptor on `path` once it is known to be a regular file of at most `limit` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _fail(error, what, path, exc.strerror or exc.__class__.__name__) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise _fail(error, what, path, f"it is {kind}", "give a regular file, not a directory, FIFO or device")
        if info.st_size > limit:
            raise _fail(error, what, path, f"it is {_size(info.st_size)}, over the limit of {_size(limit)}",
                        "split or shorten it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fail(error: type[Exception], what: str, path: str | os.PathLike[str], problem: str,
          hint: str | None = None) -> Exception:
    return error(f"cannot read {what}: {problem}", where=short_path(path), hint=hint)  # type: ignore[call-arg]


def read_text(path: str | os.PathLike[str], *, what: str, error: type[Exception],
              limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the regular file `path`, at most `limit` bytes; else `error` (a
    HarnessError class) saying `what` could not be read, naming the file."""
    fd = _open_checked(path, what, error, limit)
    try:
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise _fail(error, what, path, exc.strerror or exc.__class__.__name__) from None
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise _fail(error, what, path, f"it is over the limit of {_size(limit)}", "split or shorten it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(error, what, path, f"not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None


def read_lines(path: str | os.PathLike[str], *, what: str, error: type[Exception],
               limit: int = MAX_INPUT_BYTES, max_line: int = MAX_INPUT_BYTES) -> Iterator[str]:
    """The lines of the regular file `path` (at most `limit` bytes), one at a time; a line longer
    than `max_line` characters is skipped (read in pieces, never held whole). Bytes that are not
    UTF-8 become U+FFFD."""
    fd = _open_checked(path, what, error, limit)
    with os.fdopen(fd, encoding="utf-8", errors="replace", newline="") as handle:
        while True:
            line = handle.readline(max_line + 1)
            if not line:
                return
            if len(line) > max_line:
                while line and not line.endswith("\n"):  # the rest of the overlong line
                    line = handle.readline(max_line + 1)
                continue
            yield line


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n:,} bytes"


def inside(base: Path, name: str, also: Sequence[Path] = ()) -> Path | None:
    """`name` (a path an input file wrote) under the folder `base` (or one of the folders
    `also`, which an option named); None when it leads elsewhere: ``..`` out, an absolute path
    outside, a symbolic link out."""
    path = Path(name)
    path = path if path.is_absolute() else base / path
    try:
        resolved = path.resolve()
        roots = [root.resolve() for root in (base, *also)]
    except (OSError, RuntimeError):
        return None
    return path if any(resolved == root or root in resolved.parents for root in roots) else None


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
