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

from harness.prompt.conversation import TEMPLATE
from harness.prompt.templates import ChatTemplate

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
    matches = list(_SENTINEL_RE.finditer(marked))
    if any(int(m.group(1)) >= len(messages) for m in matches):
        return None
    scaffold = _scaffold_pieces(marked, matches)
    roles = [str(messages[int(m.group(1))]["role"]) for m in matches]
    contents = [str(messages[int(m.group(1))].get("content") or "") for m in matches]
    exact = _stitch(scaffold, contents, roles, text)
    return exact if exact is not None else _align(scaffold, roles, text)


def _scaffold_pieces(marked: str, matches: list[re.Match[str]]) -> list[str]:
    """The template's own text around the sentinels: len(matches) + 1 pieces."""
    bounds = [0, *[x for m in matches for x in (m.start(), m.end())], len(marked)]
    return [marked[bounds[i]:bounds[i + 1]] for i in range(0, len(bounds), 2)]


def _stitch(scaffold: list[str], contents: list[str], roles: list[str],
            text: str) -> list[tuple[int, int, str]] | None:
    """Spans if the real rendering is exactly scaffold and contents interleaved."""
    spans, pos = [], len(scaffold[0])
    for content, role, after in zip(contents, roles, scaffold[1:], strict=True):
        spans.append((pos, pos + len(content), role))
        pos += len(content) + len(after)
    rebuilt = scaffold[0] + "".join(c + a for c, a in zip(contents, scaffold[1:], strict=True))
    return spans if rebuilt == text else None


def _align(scaffold: list[str], roles: list[str], text: str) -> list[tuple[int, int, str]] | None:
    """Spans when the template transforms content (``| trim``): each content is what lies
    between its surrounding scaffold pieces in the real rendering.

    The pieces are anchored to the whole rendering, not found greedily from the left, so a
    content holding the text of the piece after it (a user writing ``<|eot_id|>``) does not
    cut its turn short. Latest feasible start of each piece from the right, then earliest
    start from the left within it: shortest contents, linear in pieces, no backtracking."""
    if any(not piece for piece in scaffold[1:-1]) or not text.startswith(scaffold[0]):
        return None
    last = len(text) - len(scaffold[-1])
    if last < len(scaffold[0]) or not text.endswith(scaffold[-1]):
        return None
    latest = [0] * len(scaffold)
    latest[-1] = last
    for i in range(len(scaffold) - 2, 0, -1):
        latest[i] = text.rfind(scaffold[i], 0, latest[i + 1])
        if latest[i] < 0:
            return None
    spans, pos = [], len(scaffold[0])
    for i, role in enumerate(roles, start=1):
        start = latest[i] if i == len(scaffold) - 1 else text.find(scaffold[i], pos)
        if start < pos or start > latest[i]:
            return None
        spans.append((pos, start, role))
        pos = start + len(scaffold[i])
    return spans


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
