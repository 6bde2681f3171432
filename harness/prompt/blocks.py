"""Blocks inside an assistant turn: thinking and tool calls, and the delimiters around them.

A template's own delimiters are derived by probe rendering, as turn markers are: an assistant
message whose ``reasoning_content`` and content are sentinels shows what opens and closes the
thinking block (``<think>\\n`` ... ``\\n</think>\\n\\n`` for Qwen3); one whose tool call is a
sentinel shows the tool-call block. What no probe shows comes from a table of known formats,
which also applies to text a model writes (a model under ChatML may still think in ``<think>``).
A generation prompt that ends inside a thinking block (``<｜Assistant｜><think>\\n``) means the
model's first words are reasoning.

Roles: text inside a thinking block is ``reasoning``, its delimiters ``template``; a tool call,
delimiters included, is ``tool_call`` (the model spells the whole call).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import TemplateError
from harness.prompt.conversation import (
    ASSISTANT,
    REASONING,
    REASONING_KEYS,
    TEMPLATE,
    TOOL_CALL,
    USER,
)
from harness.prompt.scan import Scanner
from harness.prompt.segments import CONTENT, Segment, sentinel
from harness.prompt.templates import ChatTemplate

# Thinking formats models write (text-generation-webui's list and a few more).
REASONING_FORMATS = (
    ("<think>", "</think>"),
    ("<seed:think>", "</seed:think>"),
    ("<thinking>", "</thinking>"),
    ("[THINK]", "[/THINK]"),
    ("<|channel|>analysis<|message|>", "<|end|>"),
    ("<|START_THINKING|>", "<|END_THINKING|>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("◁think▷", "◁/think▷"),
)
# Tool-call formats; an empty close runs to the end of the turn.
TOOL_CALL_FORMATS = (
    ("<tool_call>", "</tool_call>"),
    ("<|tool_call_start|>", "<|tool_call_end|>"),
    ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"),
    ("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"),
    ("[TOOL_CALLS]", ""),
    ("<|python_tag|>", ""),
    ("<|channel|>commentary to=", "<|call|>"),
)


@dataclass(frozen=True)
class Block:
    role: str  # REASONING or TOOL_CALL
    open: str
    close: str
    derived: bool = False  # found by probing this template, not taken from the table

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "open": self.open, "close": self.close, "derived": self.derived}


@dataclass(frozen=True)
class BlockMarkers:
    """The blocks to recognise (derived ones first) and whether the generation prompt leaves a
    thinking block open."""

    blocks: tuple[Block, ...]
    prompt_opens_reasoning: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": [b.to_dict() for b in self.blocks],
                "prompt_opens_reasoning": self.prompt_opens_reasoning}

    @property
    def derived(self) -> tuple[Block, ...]:
        return tuple(b for b in self.blocks if b.derived)


def known_blocks(derived: tuple[Block, ...] = ()) -> tuple[Block, ...]:
    table = [Block(REASONING, o, c) for o, c in REASONING_FORMATS] + \
            [Block(TOOL_CALL, o, c) for o, c in TOOL_CALL_FORMATS]
    seen = {b.open for b in derived}
    return (*derived, *[b for b in table if b.open not in seen])


KNOWN = BlockMarkers(known_blocks())


def derive_blocks(template: ChatTemplate, variables: Mapping[str, Any] | None = None,
                  generation_prompt: str = "") -> BlockMarkers:
    """Probe the template for its thinking and tool-call delimiters; the table fills the rest."""
    derived = [b for b in (_probe_reasoning(template, variables), _probe_tool_call(template, variables))
               if b is not None]
    blocks = known_blocks(tuple(derived))
    return BlockMarkers(blocks, opens_reasoning(generation_prompt, blocks))


def opens_reasoning(generation_prompt: str, blocks: tuple[Block, ...]) -> bool:
    """Whether the generation prompt ends inside a thinking block (opened, not closed)."""
    text = generation_prompt.rstrip()
    for block in blocks:
        if block.role != REASONING or not block.open.strip():
            continue
        at = text.rfind(block.open.strip())
        if at >= 0 and block.close.strip() not in text[at:]:
            return True
    return False


def _render(template: ChatTemplate, messages: list[dict[str, Any]],
            variables: Mapping[str, Any] | None) -> str | None:
    try:
        return template.render(messages, add_generation_prompt=False, variables=variables)
    except TemplateError:
        return None


def _probe_reasoning(template: ChatTemplate, variables: Mapping[str, Any] | None) -> Block | None:
    """``[user S0, assistant {reasoning_content (or thinking): S1, content: S2}]``: the text
    right before S1 (its last word, or a known opener it ends with) opens the block, the text
    between S1 and S2 closes it."""
    s0, s1, s2 = sentinel(0), sentinel(1), sentinel(2)
    for key in REASONING_KEYS:
        text = _render(template, [{"role": USER, "content": s0},
                                  {"role": ASSISTANT, key: s1, "content": s2}], variables)
        if text is not None and 0 <= text.find(s0) < text.find(s1) < text.find(s2):
            break
    else:
        return None
    before = text[text.find(s0) + len(s0): text.find(s1)].strip()
    close = text[text.find(s1) + len(s1): text.find(s2)].strip()
    words = before.split()
    open_ = _known_suffix(before, [o for o, _ in REASONING_FORMATS]) or (words[-1] if words else "")
    if not open_ or not close or "\ue000" in open_ + close:
        return None
    return Block(REASONING, open_, close, derived=True)


def _probe_tool_call(template: ChatTemplate, variables: Mapping[str, Any] | None) -> Block | None:
    """An assistant turn whose one tool call has a sentinel name and arguments: what the template
    writes before the name opens the call, after the arguments closes it (to a line's end)."""
    name, args = "\ue000" + "9" + "\ue001", sentinel(8)
    call = {"type": "function", "function": {"name": name, "arguments": args}}
    text = _render(template, [{"role": USER, "content": sentinel(0)},
                              {"role": ASSISTANT, "content": "", "tool_calls": [call]}], variables)
    if text is None or name not in text:
        return None
    head = text[text.find(sentinel(0)) + len(sentinel(0)): text.find(name)]
    for open_, close in TOOL_CALL_FORMATS:
        if open_ in head:
            tail = text[text.rfind(args) + len(args):] if args in text else ""
            return Block(TOOL_CALL, open_, close if close in tail else "", derived=True)
    return None


def _known_suffix(text: str, candidates: list[str]) -> str | None:
    for candidate in sorted(candidates, key=len, reverse=True):
        if text.endswith(candidate):
            return candidate
    return None


def split_reasoning(text: str, segments: Sequence[Segment]) -> list[Segment]:
    """Assistant content holding a thinking block written as text (``<think>...</think>`` in
    ``content``, or a prefill that opens one): the inside becomes ``reasoning``, the delimiters
    ``template`` (still content: they are tokenized as the message's text)."""
    out: list[Segment] = []
    closes = dict(REASONING_FORMATS)
    scan = Scanner(text, [*closes, *closes.values()])  # one pass over the text for every segment
    for seg in segments:
        if seg.role != ASSISTANT or seg.kind != CONTENT:
            out.append(seg)
            continue
        out.extend(_split(scan, closes, seg))
    return out


def _split(scan: Scanner, closes: dict[str, str], seg: Segment) -> list[Segment]:
    pieces: list[Segment] = []
    pos = seg.start
    while pos < seg.end:
        found = _next_of(scan, pos, seg.end, closes)
        if found is None:
            break
        at, open_ = found
        close = closes[open_]
        inner = at + len(open_)
        stop = _next_of(scan, inner, seg.end, {close: close})
        end = seg.end if stop is None else stop[0]
        pieces += [Segment(pos, at, ASSISTANT, CONTENT), Segment(at, inner, TEMPLATE, CONTENT),
                   Segment(inner, end, REASONING, CONTENT)]
        if stop is not None:
            pieces.append(Segment(end, end + len(close), TEMPLATE, CONTENT))
            pos = end + len(close)
        else:
            pos = seg.end
    pieces.append(Segment(pos, seg.end, ASSISTANT, CONTENT))
    return [p for p in pieces if p.end > p.start]


def _next_of(scan: Scanner, pos: int, end: int, wanted) -> tuple[int, str] | None:
    """The earliest occurrence at or after `pos` of one of `wanted` that ends by `end` (the
    earliest start; the first of `wanted` at a tie, as the table orders them)."""
    while (found := scan.find(pos)) is not None and found[0] < end:
        at, texts = found
        hits = [t for t in wanted if t in texts and at + len(t) <= end]
        if hits:
            return at, hits[0]
        pos = at + 1
    return None
