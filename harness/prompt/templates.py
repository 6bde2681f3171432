"""Chat templates: where they come from and how they render.

Rendering follows Hugging Face ``apply_chat_template``: an immutable sandboxed Jinja
environment with ``trim_blocks``/``lstrip_blocks``, loop controls, ``{% generation %}`` blocks
rendered as their body, ``raise_exception``, ``strftime_now`` and a ``tojson`` filter that calls
``json.dumps`` with ``ensure_ascii=False`` like transformers does. Each distinct source is
compiled once. Every Jinja failure becomes a :class:`TemplateError` naming template and line.

A template, above all one embedded in a downloaded GGUF, is code from a stranger. Beyond the
sandbox it is held to limits: sources over ``MAX_SOURCE_CHARS`` are refused unread, outputs stop
at ``MAX_OUTPUT_CHARS``, ``*`` and ``**`` refuse results no prompt needs, and every render runs in
the render worker (:mod:`harness.prompt.render_worker`), a separate process with memory and time limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import TemplateError
from harness.paths import library_dir
from harness.prompt import render_worker
from harness.untrusted import has_surrogate

MAX_SOURCE_CHARS = 1_000_000  # real chat templates are a few kilobytes
LIBRARY_DIR = library_dir("templates")
GGUF = "gguf"



@dataclass(frozen=True)
class ChatTemplate:
    """A template's source and where it came from (``gguf``, a library name, or a path), and
    the date ``strftime_now`` reads when pinned (an ISO date-time; None: the clock)."""

    name: str
    source: str
    origin: str
    now: str | None = None

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool,
               variables: Mapping[str, Any] | None = None) -> str:
        return render_source(self.source, self.name, messages,
                             add_generation_prompt=add_generation_prompt, variables=variables,
                             now=self.now)

    def pinned(self, now: str | None) -> ChatTemplate:
        """This template with ``strftime_now`` reading `now` (checked here: a bad date fails
        before any render)."""
        if now is not None:
            try:
                datetime.fromisoformat(now)
            except ValueError:
                raise TemplateError(f"not an ISO date: {now!r}", where=self.name,
                                    hint="e.g. 2026-12-01 or 2026-12-01T09:30") from None
        return replace(self, now=now)


def render_source(source: str, name: str, messages: Sequence[Mapping[str, Any]], *,
                  add_generation_prompt: bool, variables: Mapping[str, Any] | None = None,
                  now: str | None = None) -> str:
    """Render a template source as ``apply_chat_template(tokenize=False)`` would, in the render
    worker: a template that loops, allocates or crashes costs a :class:`TemplateError`, no more."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateError(f"template is too large ({len(source):,} characters; the limit is "
                            f"{MAX_SOURCE_CHARS:,})", where=name,
                            hint="a chat template is a few kilobytes; this is not one")
    prompt = render_worker.render(source, name, messages, add_generation_prompt=add_generation_prompt,
                                  variables=variables, now=now)
    if has_surrogate(prompt):  # e.g. a "\ud800" escape in a string literal: not text a model can read
        raise TemplateError("the template's output holds a lone surrogate, which is not text", where=name,
                            hint="remove the \\uD800-\\uDFFF escape from the template or its variables")
    return prompt


def list_library() -> list[str]:
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.jinja"))


def load_template(spec: str, *, embedded: str | None = None, model_name: str = "model",
                  user_dir: Path | None = None) -> ChatTemplate:
    """Resolve a template spec: ``gguf``, a library name, a user-directory name, or a path."""
    if spec == GGUF:
        if not embedded:
            raise TemplateError(f"{model_name} has no embedded chat template",
                                hint="pass --template NAME|PATH (e.g. raw or chatml)")
        return ChatTemplate(f"{model_name}:gguf", embedded, GGUF)
    path = Path(spec).expanduser()
    if spec.endswith(".jinja") or "/" in spec or path.is_file():
        if not path.is_file():
            raise TemplateError("template file not found", where=str(path),
                                hint="give a .jinja path, a library name, or gguf")
        return ChatTemplate(path.name, _read(path), str(path))
    for folder in (user_dir, LIBRARY_DIR):
        if folder is not None and (folder / f"{spec}.jinja").is_file():
            candidate = folder / f"{spec}.jinja"
            return ChatTemplate(spec, _read(candidate), str(candidate))
    known = ", ".join([GGUF, *list_library()])
    raise TemplateError(f"unknown template '{spec}'", hint=f"known: {known}; or a .jinja path")


def _read(path: Path) -> str:
    from harness.untrusted.inputs import read_text

    return read_text(path, what="the template", error=TemplateError, limit=4 * MAX_SOURCE_CHARS)
