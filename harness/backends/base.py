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
