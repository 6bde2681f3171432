"""Roles of generated tokens, shared by the local token loop and the remote one.

The open turn (prefill / impersonate text) plus everything generated is parsed with the
template's turn markers (and the model's end-of-generation texts as extra closes); each token
takes the role covering most of its characters, located by its bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.generation.records import TokenRecord
from harness.prompt.attribution import char_offsets, roles_for_spans
from harness.prompt.blocks import BlockMarkers
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser


def turn_parser(markers: TurnMarkers, eog_texts: Iterable[str],
                blocks: BlockMarkers | None = None) -> TurnParser:
    return TurnParser(markers, extra_closes=list(eog_texts), blocks=blocks)


def attribute_tokens(parser: TurnParser, plan: PromptPlan,
                     tokens: Sequence[TokenRecord]) -> list[TokenRecord]:
    """Label generated tokens (their `raw` bytes laid end to end) with roles."""
    pieces = [t.raw for t in tokens]
    text = b"".join(pieces).decode("utf-8", "replace")
    spans = parser.parse(plan.opened + text, parser.start_role(plan.writer, plan.mode))
    offset = len(plan.opened)
    offsets = [(a + offset, b + offset) for a, b in char_offsets(pieces, text)]
    roles = roles_for_spans(offsets, spans)
    return [t.with_role(r) for t, r in zip(tokens, roles, strict=True)]
