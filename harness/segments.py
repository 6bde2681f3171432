"""Which characters of a rendered prompt are message content and which are template scaffolding.

The template is rendered twice: once with the real messages and once with each content replaced
by a unique sentinel. The sentinel rendering shows exactly where each message's content lands
and what the template wrote around it; if stitching the real contents into it reproduces the real
rendering, the segmentation is exact. Templates that transform content (``| trim``, slicing)
fall back to locating each content in order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.conversation import TEMPLATE
from harness.templates import ChatTemplate

CONTENT = "content"
SCAFFOLD = "scaffold"

_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


def sentinel(i: int) -> str:
    """A content placeholder no tokenizer, template or user would produce."""
    return f"\ue000{i}\ue001"


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    role: str
    kind: str  # CONTENT or SCAFFOLD

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "role": self.role, "kind": self.kind}


def tile(length: int, content: Sequence[tuple[int, int, str]]) -> list[Segment]:
    """Content spans (start, end, role) -> segments tiling [0, length): gaps are scaffold."""
    segments: list[Segment] = []
    pos = 0
    for start, end, role in sorted(content):
        start, end = max(start, pos), min(end, length)
        if end <= start:
            continue
        if start > pos:
            segments.append(Segment(pos, start, TEMPLATE, SCAFFOLD))
        segments.append(Segment(start, end, role, CONTENT))
        pos = end
    if pos < length:
        segments.append(Segment(pos, length, TEMPLATE, SCAFFOLD))
    return segments


def clip(segments: Sequence[Segment], end: int) -> list[Segment]:
    """Segments cut at character `end`."""
    return [Segment(s.start, min(s.end, end), s.role, s.kind) for s in segments if s.start < end]


def shift(segments: Sequence[Segment], offset: int) -> list[Segment]:
    return [Segment(s.start + offset, s.end + offset, s.role, s.kind) for s in segments]


def with_sentinels(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**m, "content": sentinel(i)} for i, m in enumerate(messages)]


def render_segmented(template: ChatTemplate, messages: Sequence[Mapping[str, Any]], *,
                     add_generation_prompt: bool,
                     variables: Mapping[str, Any] | None = None) -> tuple[str, list[Segment]]:
    """Render and return (prompt, segments tiling the prompt)."""
    text = template.render(messages, add_generation_prompt=add_generation_prompt, variables=variables)
    spans = _spans_by_sentinel(template, messages, text, add_generation_prompt, variables)
    if spans is None:
        spans = _spans_by_search(messages, text)
    return text, tile(len(text), spans)


def _spans_by_sentinel(template: ChatTemplate, messages: Sequence[Mapping[str, Any]], text: str,
                       add_generation_prompt: bool,
                       variables: Mapping[str, Any] | None) -> list[tuple[int, int, str]] | None:
    from harness.errors import TemplateError

    try:
        marked = template.render(with_sentinels(messages), add_generation_prompt=add_generation_prompt,
                                 variables=variables)
    except TemplateError:
        return None  # the template inspects content; fall back to searching
    spans: list[tuple[int, int, str]] = []
    rebuilt: list[str] = []
    pos = 0
    last = 0
    for match in _SENTINEL_RE.finditer(marked):
        index = int(match.group(1))
        if index >= len(messages):
            return None
        rebuilt.append(marked[last:match.start()])
        pos += match.start() - last
        content = str(messages[index].get("content") or "")
        spans.append((pos, pos + len(content), str(messages[index]["role"])))
        rebuilt.append(content)
        pos += len(content)
        last = match.end()
    rebuilt.append(marked[last:])
    return spans if "".join(rebuilt) == text else None


def _spans_by_search(messages: Sequence[Mapping[str, Any]], text: str) -> list[tuple[int, int, str]]:
    spans = []
    cursor = 0
    for message in messages:
        content = str(message.get("content") or "")
        for candidate in (content, content.strip()):
            if not candidate:
                continue
            at = text.find(candidate, cursor)
            if at >= 0:
                spans.append((at, at + len(candidate), str(message["role"])))
                cursor = at + len(candidate)
                break
    return spans
