"""Where harness keeps user files. ``HARNESS_HOME`` moves everything (tests use it).

Data (logs, saved conversations, user templates and profiles) goes to ``$HARNESS_HOME`` or
``$XDG_DATA_HOME/harness``; the model cache to ``$HARNESS_CACHE``, ``$HARNESS_HOME/cache`` or
``$XDG_CACHE_HOME/harness``.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    home = os.environ.get("HARNESS_HOME")
    if home:
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "harness"


def cache_dir() -> Path:
    explicit = os.environ.get("HARNESS_CACHE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HARNESS_HOME")
    if home:
        return Path(home) / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness"


def user_templates_dir() -> Path:
    return data_dir() / "templates"


def logs_dir() -> Path:
    return data_dir() / "logs"


def library_dir(kind: str) -> Path:
    """The bundled ``templates`` or ``profiles`` folder: inside the installed package
    (``harness/library/KIND``, where the wheel maps the top-level folders), else the source
    tree's top-level folder."""
    package = Path(__file__).resolve().parent
    installed = package / "library" / kind
    return installed if installed.is_dir() else package.parent / kind
