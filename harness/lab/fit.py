"""Template fit: how "at home" a model is in each candidate template.

The same conversation is rendered with each template and scored teacher-forced. Three
surprisals (bits) describe the fit: the mean over the scaffold tokens the template adds, the mean
over the assistant's content, and the cost of ending an assistant turn — the summed surprisal
of the tokens spelling the template's end-of-turn marker after each assistant message, averaged
over messages (a marker split into five ordinary tokens costs all five).
Candidates are ranked by their sum, lowest first: a model trained on a format predicts its
scaffolding, the replies inside it and where the replies end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from harness.errors import HarnessError
from harness.generation.records import TokenRecord
from harness.generation.workbench import Workbench
from harness.prompt.conversation import ASSISTANT, TEMPLATE, Conversation
from harness.prompt.templates import ChatTemplate


@dataclass(frozen=True)
class FitRow:
    template: str
    scaffold_bits: float | None = None
    assistant_bits: float | None = None
    end_of_turn_bits: float | None = None
    tokens: int = 0
    error: str | None = None

    @property
    def score(self) -> float:
        parts = (self.scaffold_bits, self.assistant_bits, self.end_of_turn_bits)
        return math.inf if self.error or None in parts else sum(parts)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["score"] = None if math.isinf(self.score) else round(self.score, 4)
        return out


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _end_costs(tokens: Sequence[TokenRecord], close: str) -> list[float]:
    """Summed surprisal of the scaffold tokens spelling `close` after each assistant message."""
    want = max(len(close.strip()), 1)
    costs = []
    for i in range(1, len(tokens)):
        if tokens[i - 1].role != ASSISTANT or tokens[i].role != TEMPLATE:
            continue
        spelled, cost, j = "", 0.0, i
        while j < len(tokens) and tokens[j].role == TEMPLATE and len(spelled.strip()) < want:
            stats = tokens[j].stats
            cost += stats.surprisal_bits if stats else 0.0
            spelled += tokens[j].piece
            j += 1
        costs.append(cost)
    return costs


def fit_metrics(name: str, tokens: Sequence[TokenRecord], close: str = "") -> FitRow:
    scored = [t for t in tokens if t.stats is not None]
    scaffold = [t.stats.surprisal_bits for t in scored if t.role == TEMPLATE]
    assistant = [t.stats.surprisal_bits for t in scored if t.role == ASSISTANT]
    return FitRow(name, _mean(scaffold), _mean(assistant), _mean(_end_costs(tokens, close)), len(tokens))


def rank_templates(bench: Workbench, conversation: Conversation,
                   candidates: Sequence[ChatTemplate]) -> list[FitRow]:
    """Score the conversation under each template; best fit first, failures last."""
    rows = []
    original = bench.template
    try:
        for template in candidates:
            try:
                bench.set_template(template)
                _, tokens = bench.score(conversation)
                close = bench.markers.closes.get(ASSISTANT, "")
                rows.append(fit_metrics(template.name, tokens, close))
            except HarnessError as exc:
                rows.append(FitRow(template.name, error=str(exc)))
    finally:
        bench.set_template(original)
    return sorted(rows, key=lambda r: (r.score, r.template))
