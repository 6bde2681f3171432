"""`harness score --text F`: teacher-forced statistics over raw text, no template.

The text is tokenized as llama.cpp's perplexity tool does (control-token strings stay plain
text; a BOS first when the model's vocabulary asks for one). Text tokens take the role ``text``,
the BOS ``template``. Perplexity = exp(mean negative log-likelihood, nats) over every token after
the first — llama.cpp's definition applied to all tokens rather than the second half of each
n_ctx chunk (same formula, same tokens, one window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harness.backends.base import Backend
from harness.errors import CommandError
from harness.generation.evaluation import PromptEvaluator, workspace_for
from harness.generation.records import TokenRecord
from harness.prompt.conversation import TEMPLATE
from harness.stats.entropy import LN2

TEXT = "text"


def encode_text(backend: Backend, text: str) -> list[TokenRecord]:
    info = backend.info
    records = []
    for token in backend.tokenize(text, special=False):
        raw = backend.piece(token)
        records.append(TokenRecord(token, raw.decode("utf-8", "replace"), TEXT, raw=raw))
    if info.add_bos and info.bos_id is not None:
        records.insert(0, TokenRecord(info.bos_id, info.bos_text, TEMPLATE, raw=info.bos_text.encode()))
    return records


def score_text(backend: Backend, text: str) -> list[TokenRecord]:
    """Every token of `text` with its statistics (None for the first: nothing predicts it)."""
    records = encode_text(backend, text)
    if len(records) < 2:
        raise CommandError("the text is shorter than two tokens; there is nothing to score")
    evaluator = PromptEvaluator(backend, workspace_for(backend))
    stats, _ = evaluator.evaluate([r.id for r in records])
    return [replace(r, stats=s) for r, s in zip(records, stats, strict=True)]


def perplexity(tokens: Sequence[TokenRecord]) -> dict[str, Any]:
    """exp(mean NLL in nats) over the tokens that have statistics (2 ** mean surprisal bits)."""
    nll = [t.stats.surprisal_bits * LN2 for t in tokens if t.stats is not None]
    mean = sum(nll) / len(nll)
    return {"scored_tokens": len(nll), "mean_nll_nats": mean, "perplexity": math.exp(mean)}
