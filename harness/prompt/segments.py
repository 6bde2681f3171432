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

from harness.prompt.conversation import (
    REASONING,
    REASONING_KEYS,
    TEMPLATE,
    TOOL_CALL,
    attribution_role,
    content_text,
)
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


def tile(length: int, content: Sequence[tuple[int, int, str] | tuple[int, int, str, str]]) -> list[Segment]:
    """Spans (start, end, role[, kind]) -> segments tiling [0, length): gaps are template
    scaffold; a span's kind is CONTENT unless it says otherwise (a tool call the template
    spells is the ``tool_call`` role's scaffold)."""
    segments: list[Segment] = []
    pos = 0
    for span in sorted(content):
        start, end, role = span[0], span[1], span[2]
        kind = span[3] if len(span) > 3 else CONTENT  # type: ignore[misc]
        start, end = max(start, pos), min(end, length)
        if end <= start:
            continue
        if start > pos:
            segments.append(Segment(pos, start, TEMPLATE, SCAFFOLD))
        segments.append(Segment(start, end, role, kind))
        pos = end
    if pos < length:
        segments.append(Segment(pos, length, TEMPLATE, SCAFFOLD))
    return segments


def clip(segments: Sequence[Segment], end: int) -> list[Segment]:
    """Segments cut at character `end`."""
    return [Segment(s.start, min(s.end, end), s.role, s.kind) for s in segments if s.start < end]


@dataclass(frozen=True)
class _Field:
    """One text a message carries, as a sentinel replaced it: its role and its real text."""

    role: str
    text: str


def _marked(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[_Field]]:
    """Messages with every text field a sentinel: string content and text parts (the message's
    role), ``reasoning_content``/``thinking`` (reasoning), string tool-call arguments (tool_call).
    ``None`` content stays ``None``, empty strings stay empty and object arguments as they are."""
    fields: list[_Field] = []

    def mark(role: str, text: str) -> str:
        if not text:  # templates test truthiness (`{% if content %}`): "" stays ""
            return text
        fields.append(_Field(role, text))
        return sentinel(len(fields) - 1)

    marked = []
    for message in messages:
        m = dict(message)
        role = attribution_role(str(m.get("role")))
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = mark(role, content)
        elif isinstance(content, list):
            m["content"] = [{**p, "text": mark(role, p["text"])}
                            if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
                            else p for p in content]
        for key in REASONING_KEYS:
            if isinstance(m.get(key), str):
                m[key] = mark(REASONING, m[key])
        if isinstance(m.get("tool_calls"), list):
            m["tool_calls"] = [_marked_call(call, mark) for call in m["tool_calls"]]
        marked.append(m)
    return marked, fields


def _marked_call(call: Any, mark: Any) -> Any:
    if not isinstance(call, Mapping):
        return call
    function = call.get("function")
    if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
        return {**call, "function": {**function, "arguments": mark(TOOL_CALL, function["arguments"])}}
    return call


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

    sentinelled, fields = _marked(messages)
    try:
        marked = template.render(sentinelled, add_generation_prompt=add_generation_prompt,
                                 variables=variables)
    except TemplateError:
        return None  # the template inspects content; fall back to searching
    matches = list(_SENTINEL_RE.finditer(marked))
    if any(int(m.group(1)) >= len(fields) for m in matches):
        return None
    scaffold = _scaffold_pieces(marked, matches)
    roles = [fields[int(m.group(1))].role for m in matches]
    contents = [fields[int(m.group(1))].text for m in matches]
    spans = _stitch(scaffold, contents, roles, text)
    if spans is None:
        spans = _align(scaffold, roles, text)
    if spans is None:
        return None
    calls = _tool_call_regions(template, sentinelled, marked, add_generation_prompt, variables)
    return [*spans, *_regions_in_text(calls, matches, scaffold, spans)]


def _tool_call_regions(template: ChatTemplate, sentinelled: list[dict[str, Any]], marked: str,
                       add_generation_prompt: bool, variables: Mapping[str, Any] | None) -> list[tuple[int, int]]:
    """Where each message's tool calls render in the marked text: the part that differs from a
    rendering without them (a template that cannot render a message without calls: none)."""
    from harness.errors import TemplateError

    regions = []
    for i, message in enumerate(sentinelled):
        if not message.get("tool_calls"):
            continue
        bare = {k: v for k, v in message.items() if k != "tool_calls"}
        for variant in (bare, {**bare, "content": bare.get("content") or ""}):
            try:
                other = template.render([*sentinelled[:i], variant, *sentinelled[i + 1:]],
                                        add_generation_prompt=add_generation_prompt, variables=variables)
            except TemplateError:
                continue
            regions.append(_difference(marked, other))
            break
    return [(a, b) for a, b in regions if b > a]


def _difference(text: str, other: str) -> tuple[int, int]:
    """The span of `text` that `other` lacks (common prefix and suffix removed). An insertion can
    often slide (``<tool_call>...</tool_call>`` vs ``tool_call>...</tool_call><``): of its
    positions the first, from the right, that opens with a bracket and closes with one wins."""
    head, limit = 0, min(len(text), len(other))
    while head < limit and text[head] == other[head]:
        head += 1
    tail = 0
    while tail < limit - head and text[-1 - tail] == other[-1 - tail]:
        tail += 1
    end = len(text) - tail
    a, b = head, end
    while a > 0 and b > a and text[a - 1] == text[b - 1]:
        a, b = a - 1, b - 1
        if text[a] in "<[{" and text[b - 1] in ">]}":
            return a, b
    return head, end


def _regions_in_text(regions: list[tuple[int, int]], matches: list[re.Match[str]], scaffold: list[str],
                     spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str, str]]:
    """Tool-call regions of the marked text as tool_call spans of the real text: only their
    scaffold (the sentinels inside keep their own roles), leading/trailing whitespace left out."""
    marked_starts = [0, *[m.end() for m in matches]]  # where each scaffold piece begins, marked
    real_starts = [0, *[end for _, end, _ in spans[:len(matches)]]]  # ... and in the real text
    out = []
    for start, end in regions:
        for j, piece in enumerate(scaffold):
            a, b = max(start, marked_starts[j]), min(end, marked_starts[j] + len(piece))
            while a < b and piece[a - marked_starts[j]].isspace():
                a += 1
            while b > a and piece[b - 1 - marked_starts[j]].isspace():
                b -= 1
            if a < b:
                shift_by = real_starts[j] - marked_starts[j]
                out.append((a + shift_by, b + shift_by, TOOL_CALL, SCAFFOLD))
    return out


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
        content = content_text(message.get("content"))
        for candidate in (content, content.strip()):
            if not candidate:
                continue
            at = text.find(candidate, cursor)
            if at >= 0:
                spans.append((at, at + len(candidate), attribution_role(str(message["role"]))))
                cursor = at + len(candidate)
                break
    return spans
