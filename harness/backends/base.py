"""What harness needs from a model engine: tokens in, logits out, a rewindable KV cache.

A backend never samples and never computes statistics: it tokenizes, evaluates tokens at the
end of its cache, hands back *views* of the logits it produced, and drops cache entries past a
position. Everything else (sampling, entropy, roles) lives in the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    architecture: str
    n_vocab: int
    n_ctx: int
    n_ctx_train: int
    eog_ids: frozenset[int]
    bos_id: int | None
    eos_id: int | None
    bos_text: str
    eos_text: str
    add_bos: bool
    chat_template: str | None


class Backend(Protocol):
    info: ModelInfo

    @property
    def n_past(self) -> int:
        """Number of tokens held in the KV cache."""

    @property
    def max_logit_rows(self) -> int:
        """Most tokens one `decode(..., all_logits=True)` call may take."""

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`, no BOS added; `special`: control-token strings become control
        tokens (False: they are spelled out as plain text)."""

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for, special tokens rendered as their text."""

    def is_special(self, token: int) -> bool:
        """Whether a token is a control token (shown distinctly; never plain text)."""

    def token_id(self, text: str) -> int | None:
        """The id of a token whose text is exactly `text`, if there is one."""

    def truncate(self, n_keep: int) -> int:
        """Drop cache entries from position `n_keep` on; returns the positions actually kept."""

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray:
        """Evaluate `tokens` after the cache. Returns a view valid until the next call:
        (len(tokens), n_vocab) logits if `all_logits`, else the last row (n_vocab,)."""

    def close(self) -> None: ...


class Sequences(Protocol):
    """Several sequences decoded together over one KV cache of the same model.

    Sequence 0 holds the shared prompt: for it, this is a :class:`Backend` (``n_past``,
    ``truncate``, ``decode``), so the prompt evaluator drives it unchanged; truncating it drops
    every other sequence. :meth:`fork` makes sequences 1..n-1 copies of sequence 0 (the prompt is
    evaluated once), and :meth:`step` evaluates one token for each of several sequences in one
    decode, returning their logits as a (len, n_vocab) view valid until the next call.
    """

    info: ModelInfo
    n_seq_max: int

    @property
    def n_past(self) -> int: ...

    @property
    def max_logit_rows(self) -> int: ...

    def truncate(self, n_keep: int) -> int: ...

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray: ...

    def fork(self, n: int) -> None:
        """Sequences 1..n-1 become copies of sequence 0 (whatever they held is dropped)."""

    def step(self, seqs: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """Evaluate tokens[i] at the end of sequence seqs[i], all in one decode."""

    def close(self) -> None: ...


class MultiSequenceBackend(Backend, Protocol):
    """A backend that can decode several sequences at once (local llama.cpp, the fake)."""

    def sequences(self, n_seq: int, n_ctx: int) -> Sequences:
        """A multi-sequence context for at least `n_seq` sequences and `n_ctx` cells in all
        (kept and reused while it is big enough)."""
