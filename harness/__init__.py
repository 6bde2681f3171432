"""harness: a raw text-completion chat harness for exploring chat templates.

The public API is small and loaded lazily (``import harness`` stays cheap):

- :func:`harness.open` — a model or a server with a template, as a :class:`harness.Model`;
- :class:`harness.Conversation` — messages as an immutable value;
- :class:`harness.HarnessError` — the base of every error harness reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Conversation", "HarnessError", "Model", "open"]

if TYPE_CHECKING:
    from harness.api import Model, open
    from harness.errors import HarnessError
    from harness.prompt.conversation import Conversation

_LAZY = {"open": "harness.api", "Model": "harness.api", "HarnessError": "harness.errors",
         "Conversation": "harness.prompt.conversation"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
