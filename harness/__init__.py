"""harness: a raw text-completion chat harness for exploring chat templates.

The public API is small and loaded lazily (``import harness`` stays cheap); docs/python-api.md
walks through it:

- :func:`harness.open` — a model or a server with a template, as a :class:`harness.Model`
  (``render``, ``generate``, ``stream``, ``score``); :func:`harness.render` — a template's prompt
  without a model;
- results: :class:`GenerationResult` (with :class:`StopReason`), :class:`ScoreResult`, and the
  :class:`Stream` of :class:`StreamEvent` s; records: :class:`TokenRecord`, :class:`StepStats`;
- :class:`harness.Conversation` — messages as an immutable value;
- errors: :class:`HarnessError`, the base of every error harness reports, and its kinds.

The package's layout, lowest layer first (tests/test_layers.py holds the direction)::

    errors paths yamlio interrupt untrusted   the ground floor: no harness imports
    stats/        entropy and the statistics over it (numpy only)
    prompt/       conversations, templates, modes, segments, turn markers
    inputs        what a person hands in: messages files, --var, --bias
    backends/     engines: tokens in, logits or top-k out (llama.cpp, servers, a fake)
    models/       GGUF files, the known models
    generation/   settings, sampling, token loops, workbenches, the one turn function
    lab/ store    the template lab; logs and atomic writes
    experiment/   experiment specs, databases, runners, summaries
    report/       the HTML report
    chat/         the REPL's session and commands (no terminal code)
    api repl/     the Python API; the prompt_toolkit REPL
    cli/          argv -> calls; errors -> messages and exit codes
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "CommandError", "ContextOverflowError", "Conversation", "GenerationResult", "HarnessError",
    "MessagesError", "Model", "ModeError", "ModelError", "ProfileError", "RemoteError", "ScoreResult",
    "StepStats", "StopReason", "StorageError", "Stream", "StreamEvent", "TemplateError", "TokenRecord",
    "open", "render",
]

if TYPE_CHECKING:
    from harness.api import Model, Stream, open, render
    from harness.errors import (
        CommandError,
        ContextOverflowError,
        HarnessError,
        MessagesError,
        ModeError,
        ModelError,
        ProfileError,
        RemoteError,
        StorageError,
        TemplateError,
    )
    from harness.generation.records import TokenRecord
    from harness.generation.results import GenerationResult, ScoreResult
    from harness.generation.turn import StopReason, StreamEvent
    from harness.prompt.conversation import Conversation
    from harness.stats.entropy import StepStats

_LAZY = {
    **dict.fromkeys(("open", "render", "Model", "Stream"), "harness.api"),
    **dict.fromkeys(("GenerationResult", "ScoreResult"), "harness.generation.results"),
    **dict.fromkeys(("HarnessError", "CommandError", "ContextOverflowError", "MessagesError", "ModeError",
                     "ModelError", "ProfileError", "RemoteError", "StorageError", "TemplateError"), "harness.errors"),
    "TokenRecord": "harness.generation.records", "StopReason": "harness.generation.turn",
    "StreamEvent": "harness.generation.turn", "StepStats": "harness.stats.entropy",
    "Conversation": "harness.prompt.conversation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
