"""Prompt tokens: encoding with role attribution, and evaluation with per-token statistics.

The prompt is tokenized whole with special tokens parsed (what llama.cpp's server and
transformers do). A BOS is added only when the model asks for one and the rendered text does
not already start with it. Evaluation computes each prompt token's statistics batch by batch
from the logits llama.cpp produces for that batch — never an n_ctx x n_vocab buffer — and keeps
them with the cached tokens, so a following prompt that shares a prefix evaluates and scores
only what changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.backends.base import Backend, Sequences
from harness.errors import ContextOverflowError
from harness.generation.records import TokenRecord
from harness.prompt.attribution import char_offsets, roles_for_spans
from harness.prompt.conversation import TEMPLATE, Conversation
from harness.prompt.segments import CONTENT, Segment
from harness.stats.entropy import StatsWorkspace, StepStats


def encode_prompt(backend: Backend, prompt: str, segments: Sequence[Segment], *,
                  literal_content: bool = False) -> list[TokenRecord]:
    """Token records (no statistics yet) for `prompt`, each with its role.

    By default the prompt is tokenized whole with control-token strings parsed everywhere, as
    llama.cpp's server and transformers do: `<|im_end|>` typed into a message becomes a real
    control token. With `literal_content`, message content is tokenized as plain text and only
    the template's scaffolding can yield control tokens.
    """
    info = backend.info
    if literal_content and segments:
        ids = [i for seg in segments
               for i in backend.tokenize(prompt[seg.start:seg.end], special=seg.kind != CONTENT)]
    else:
        ids = backend.tokenize(prompt)
    added_bos = (info.add_bos and info.bos_id is not None
                 and not (info.bos_text and prompt.startswith(info.bos_text)))
    pieces = [backend.piece(i) for i in ids]
    roles = roles_for_spans(char_offsets(pieces, prompt), segments) if segments else [TEMPLATE] * len(ids)
    records = [TokenRecord(i, p.decode("utf-8", "replace"), r, raw=p)
               for i, p, r in zip(ids, pieces, roles, strict=True)]
    if added_bos:
        assert info.bos_id is not None
        records.insert(0, TokenRecord(info.bos_id, info.bos_text, TEMPLATE, raw=info.bos_text.encode()))
    return records


@dataclass(frozen=True)
class Injection:
    """Message content that the tokenizer turns into control tokens."""

    role: str
    start: int
    end: int
    tokens: tuple[str, ...]

    def describe(self) -> str:
        return (f"{self.role} content at {self.start}-{self.end} contains control token(s) "
                f"{', '.join(self.tokens)} (use literal content to keep it as text)")


@dataclass(frozen=True)
class FieldInjection:
    """A role, name or other message field whose text the tokenizer turns into control tokens.
    The template prints it outside content, so literal content cannot keep it text."""

    what: str
    tokens: tuple[str, ...]

    def describe(self) -> str:
        return (f"{self.what} contains control token(s) {', '.join(self.tokens)} (the template "
                "prints it outside message content: remove them from the field)")


_PLAIN_FIELD = re.compile(r"[\w .,:;/'\-]*")  # no text of this shape is a control-token string


def message_fields(conversation: Conversation) -> tuple[tuple[str, str], ...]:
    """(what, text) for each message's role and every string in its other keys."""
    out: list[tuple[str, str]] = []

    def walk(value: Any, what: str) -> None:
        if isinstance(value, str):
            if not _PLAIN_FIELD.fullmatch(value):
                out.append((what, value))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(str(key), f"{what} key")
                walk(item, f"{what}.{key}")
        elif isinstance(value, list | tuple):
            for k, item in enumerate(value):
                walk(item, f"{what}[{k}]")

    for i, message in enumerate(conversation):
        walk(message.role, f"message {i} role")
        for key, value in message.extra.items():
            walk(str(key), f"message {i} key")
            walk(value, f"message {i} '{key}'")
    return tuple(out)


def find_field_injections(backend: Backend, fields: Sequence[tuple[str, str]]) -> list[FieldInjection]:
    found = []
    for what, text in fields:
        special = [backend.piece(i).decode("utf-8", "replace") for i in backend.tokenize(text)
                   if backend.is_special(i)]
        if special:
            found.append(FieldInjection(what, tuple(dict.fromkeys(special))))
    return found


def find_injections(backend: Backend, prompt: str, segments: Sequence[Segment]) -> list[Injection]:
    """Content segments whose text tokenizes to control tokens when special tokens are parsed."""
    found = []
    for seg in segments:
        if seg.kind != CONTENT:
            continue
        special = [backend.piece(i).decode("utf-8", "replace")
                   for i in backend.tokenize(prompt[seg.start:seg.end]) if backend.is_special(i)]
        if special:
            found.append(Injection(seg.role, seg.start, seg.end, tuple(dict.fromkeys(special))))
    return found


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def workspace_for(backend: Backend | Sequences) -> StatsWorkspace:
    """Statistics scratch for `backend`'s rows: its vocabulary and end-of-generation tokens, and
    as many threads as llama.cpp decodes with (a backend that does not say: one)."""
    threads = getattr(backend, "threads", 1)
    return StatsWorkspace(backend.info.n_vocab, backend.info.eog_ids,
                          threads=threads if isinstance(threads, int) else 1)


class PromptEvaluator:
    """Feeds token sequences to a backend, reusing the cached prefix and its statistics."""

    def __init__(self, backend: Backend | Sequences, workspace: StatsWorkspace):
        self.backend = backend
        self.workspace = workspace
        self.tokens: list[int] = []
        self.stats: list[StepStats | None] = []
        self.reused = 0  # tokens taken from the cache by the last evaluate()

    def check_fits(self, n_prompt: int, n_new: int = 1) -> None:
        n_ctx = self.backend.info.n_ctx
        if n_prompt + n_new > n_ctx:
            raise ContextOverflowError(
                f"the prompt is {n_prompt} tokens; with {n_new} to generate it exceeds the "
                f"context of {n_ctx}", hint="raise n_ctx (--n-ctx, /set n_ctx) or shorten the conversation")

    def evaluate(self, ids: Sequence[int]) -> tuple[list[StepStats | None], np.ndarray]:
        """Evaluate `ids`; returns (stats per token, None for the first; the logits row after the
        last token, a view valid until the backend's next decode)."""
        if not ids:
            raise ContextOverflowError("empty prompt: nothing to evaluate")
        self.check_fits(len(ids), 0)
        # Re-decode from the last shared token: its logits row scores the first new token.
        shared = _common_prefix(self.tokens, ids)
        keep = self.backend.truncate(max(min(shared, len(ids)) - 1, 0))
        del self.tokens[keep:]
        self.stats = self.stats[: keep + 1] if keep else [None]
        self.reused = keep
        rest = list(ids[keep:])
        step = self.backend.max_logit_rows
        last_row = None
        for start in range(0, len(rest), step):
            chunk = rest[start:start + step]
            logits = self.backend.decode(chunk, all_logits=True)
            base = keep + start
            following = list(ids[base + 1: base + 1 + len(chunk)])
            if following:  # the prompt's last row predicts a token not chosen yet
                self.stats.extend(self.workspace.rows(logits[: len(following)], following))
            self.tokens.extend(chunk)
            last_row = logits[len(chunk) - 1]
        assert last_row is not None and len(self.stats) == len(ids)
        return list(self.stats), last_row

    def accept(self, token: int, stats: StepStats) -> None:
        """Record a generated token that the backend is about to evaluate."""
        self.tokens.append(token)
        self.stats.append(stats)

    def forget(self) -> None:
        self.tokens.clear()
        self.stats.clear()
        self.backend.truncate(0)
