"""Parse generated text into turns using a template's derived markers.

When the model runs past its end of turn it goes on writing the template's scaffolding and the
next turns itself: ``<|im_end|>\\n<|im_start|>user\\n...``. The parser walks the text, treats
every occurrence of a role's open marker as the start of that role's turn and every close
marker as its end; marker text is ``template``, text inside a turn belongs to its role, text
between turns is ``template``. Repeated closes, empty turns and markers missing their
whitespace (``<|im_end|><|im_start|>``) are all handled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.prompt.conversation import ASSISTANT, SYSTEM, TEMPLATE, USER
from harness.prompt.markers import TurnMarkers
from harness.prompt.segments import CONTENT, SCAFFOLD, Segment

_NEXT_ROLE = {USER: ASSISTANT, ASSISTANT: USER, SYSTEM: USER}


@dataclass(frozen=True)
class _Marker:
    text: str
    kind: str  # "open" or "close"
    role: str


class TurnParser:
    """Splits generated text into role spans; reusable across calls (holds no text)."""

    def __init__(self, markers: TurnMarkers, extra_closes: Iterable[str] = ()):
        self._markers = markers
        table: dict[str, _Marker] = {}
        # Whitespace-only markers ("\n\n" closing a turn of plain text) are not markers here:
        # inside generated prose they are paragraph breaks far more often than turn ends.
        for role, text in markers.closes.items():
            for variant in (text, text.strip()):
                if variant.strip():
                    table.setdefault(variant, _Marker(variant, "close", role))
        for text in extra_closes:
            if text.strip():
                table.setdefault(text, _Marker(text, "close", ""))
        for role, text in markers.opens.items():
            for variant in (text, text.strip()):
                if variant.strip():  # an open wins over an equal close (Mistral's "[INST]")
                    table[variant] = _Marker(variant, "open", role)
        self._table = table
        ordered = sorted(table, key=len, reverse=True)
        self._regex = re.compile("|".join(re.escape(t) for t in ordered)) if ordered else None

    def _after_close(self, role: str | None) -> str | None:
        following = _NEXT_ROLE.get(role or "")
        if following and following in self._markers.opens and self._markers.opens[following] == "":
            return following
        return None

    def parse(self, text: str, start_role: str | None) -> list[Segment]:
        """Spans tiling `text`, starting inside a turn of `start_role` (None: between turns)."""
        spans: list[Segment] = []
        role = start_role
        pos = 0

        def emit(end: int, span_role: str, kind: str) -> None:
            if end > pos:
                spans.append(Segment(pos, end, span_role, kind))

        for match in self._regex.finditer(text) if self._regex else ():
            emit(match.start(), role or TEMPLATE, CONTENT if role else SCAFFOLD)
            pos = match.start()
            marker = self._table[match.group(0)]
            emit(match.end(), TEMPLATE, SCAFFOLD)
            pos = match.end()
            role = marker.role if marker.kind == "open" else self._after_close(role)
        emit(len(text), role or TEMPLATE, CONTENT if role else SCAFFOLD)
        return spans

    def role_at_end(self, text: str, start_role: str | None) -> str:
        """The role the next generated character would belong to."""
        role = start_role
        for match in self._regex.finditer(text) if self._regex else ():
            marker = self._table[match.group(0)]
            role = marker.role if marker.kind == "open" else self._after_close(role)
        return role or TEMPLATE


def writer_turn(spans: list[Segment], text: str, writer: str | None) -> tuple[str, bool]:
    """The text of the turn the writer was in at the start, and whether the text went past it."""
    out = []
    for span in spans:
        if span.role != writer:
            return "".join(out), True
        out.append(text[span.start:span.end])
    return "".join(out), False
