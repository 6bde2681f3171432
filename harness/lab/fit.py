"""Template fit: how "at home" a model is in each candidate template.

The same conversation is rendered with each template and scored teacher-forced. Templates are
ranked by the **total bits of the whole rendered conversation** — its description length under
the model, the summed surprisal of every scored token, lowest first. That measure does not
depend on how a template tokenizes: a marker spelled in five predictable pieces costs what its
pieces cost together, and a token straddling the end of the content and a marker (``.<``) counts
once, wherever the boundary falls.

Beside it, for reading, bits are spread evenly over each token's bytes and summed per byte
range: bits per byte of message content, bits per byte of scaffold, and the end-of-turn cost —
the bits of the bytes of the assistant's close marker, counted from the byte where the content
ends, averaged over assistant messages. The first token has no prediction and is left out of
every template's total alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from harness.errors import HarnessError
from harness.generation.records import TokenRecord
from harness.generation.workbench import Workbench
from harness.prompt.conversation import ASSISTANT, Conversation
from harness.prompt.segments import CONTENT, Segment
from harness.prompt.templates import ChatTemplate


@dataclass(frozen=True)
class FitRow:
    template: str
    total_bits: float | None = None
    content_bits_per_byte: float | None = None
    scaffold_bits_per_byte: float | None = None
    end_of_turn_bits: float | None = None
    tokens: int = 0
    error: str | None = None

    @property
    def score(self) -> float:
        return math.inf if self.error or self.total_bits is None else self.total_bits

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["score"] = None if math.isinf(self.score) else round(self.score, 4)
        return out


def bits_per_byte(tokens: Sequence[TokenRecord]) -> list[float]:
    """Each token's surprisal spread evenly over its bytes (unscored tokens: 0)."""
    out: list[float] = []
    for t in tokens:
        bits = t.stats.surprisal_bits if t.stats is not None else 0.0
        out += [bits / len(t.raw)] * len(t.raw) if t.raw else []
    return out


def fit_metrics(name: str, prompt: str, segments: Sequence[Segment], tokens: Sequence[TokenRecord],
                close: str = "") -> FitRow:
    encoded = prompt.encode("utf-8")
    laid = list(tokens)
    if laid and b"".join(t.raw for t in laid) != encoded:
        laid = laid[1:]  # a BOS the tokenizer added is not in the text
    per_byte = bits_per_byte(laid)
    if len(per_byte) != len(encoded):
        return FitRow(name, error="the tokens do not spell the prompt")
    starts = _byte_starts(prompt)
    content = scaffold = 0.0
    content_bytes = scaffold_bytes = 0
    ends: list[float] = []
    for seg in segments:
        a, b = starts[seg.start], starts[seg.end]
        bits = sum(per_byte[a:b])
        if seg.kind == CONTENT:
            content, content_bytes = content + bits, content_bytes + (b - a)
        else:
            scaffold, scaffold_bytes = scaffold + bits, scaffold_bytes + (b - a)
        if seg.role == ASSISTANT and seg.kind == CONTENT and close and seg.end < len(prompt):
            ends.append(sum(per_byte[b:b + len(close.encode("utf-8"))]))
    total = sum(t.stats.surprisal_bits for t in tokens if t.stats is not None)
    return FitRow(name, total, content / content_bytes if content_bytes else None,
                  scaffold / scaffold_bytes if scaffold_bytes else None,
                  sum(ends) / len(ends) if ends else None, len(tokens))


def _byte_starts(text: str) -> list[int]:
    starts = [0]
    for ch in text:
        starts.append(starts[-1] + len(ch.encode("utf-8")))
    return starts


def rank_templates(bench: Workbench, conversation: Conversation,
                   candidates: Sequence[ChatTemplate]) -> list[FitRow]:
    """Score the conversation under each template; fewest total bits first, failures last."""
    rows = []
    original = bench.template
    try:
        for template in candidates:
            try:
                bench.set_template(template)
                plan, tokens = bench.score(conversation)
                close = bench.markers.closes.get(ASSISTANT, "")
                rows.append(fit_metrics(template.name, plan.prompt, plan.segments, tokens, close))
            except HarnessError as exc:
                rows.append(FitRow(template.name, error=str(exc)))
    finally:
        bench.set_template(original)
    return sorted(rows, key=lambda r: (r.score, r.template))
