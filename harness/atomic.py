"""Writing a file so that a crash, a full disk or a planted symlink never leaves half of one:
a temp file beside the target, fsynced, renamed over it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import StorageError


def save_json(path: str | Path, data: Mapping[str, Any], *, indent: int | None = 2) -> None:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    write_text(path, json.dumps(data, ensure_ascii=False, indent=indent, default=str))


def write_text(path: str | Path, text: str) -> None:
    """Write a file atomically: a temp file created exclusively beside it (never an existing file
    or a symlink someone planted), fsynced, renamed over the target (a symlink target is
    replaced, not followed). On any failure (a full disk) the temp file is removed."""
    target = Path(path).expanduser()
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        tmp = None
    except (OSError, UnicodeEncodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise StorageError(f"cannot save: {reason}", where=str(target),
                           hint="free some disk space or choose another place") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
