"""Generated assistant text -> a message: reasoning, content and tool calls.

The same blocks that attribute roles (:mod:`harness.prompt.blocks`) cut the text: what lies in a
thinking block becomes ``reasoning_content``, each tool-call block a ``tool_calls`` entry (its body
read as JSON ``{"name", "arguments"}``, or a list of them; a body that is not JSON stays in the
content), the rest ``content`` with the whitespace the template puts around blocks trimmed, as
Hugging Face's ``parse_response`` leaves it. A render -> parse -> render round trip is the check:
parsing what a template wrote for a message gives back that message.
"""

from __future__ import annotations

from typing import Any

from harness.prompt.blocks import KNOWN, Block, BlockMarkers
from harness.prompt.conversation import ASSISTANT, REASONING, Message
from harness.prompt.scan import Scanner
from harness.untrusted.inputs import parse_json


def parse_response(text: str, blocks: BlockMarkers = KNOWN, *, in_reasoning: bool = False) -> Message:
    """The assistant message `text` spells; `in_reasoning`: the text starts inside a thinking
    block (the generation prompt opened it). One pass over the text; a tool call's JSON is read
    with a nesting limit."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    opens = {b.open: b for b in reversed(blocks.blocks) if b.open}  # the first block of an open wins
    scan = Scanner(text, [*opens, *(b.close for b in blocks.blocks if b.close)])
    pos = 0
    open_block = _reasoning_block(blocks) if in_reasoning else None
    while pos <= len(text):
        if open_block is not None:
            stop = _find(scan, pos, open_block.close) if open_block.close else -1
            end = len(text) if stop < 0 else stop
            body = text[pos:end]
            if open_block.role == REASONING:
                reasoning.append(body)
            elif not _read_calls(body, calls):
                content.append(text[pos - len(open_block.open):end + len(open_block.close)])
            pos = end + (len(open_block.close) if stop >= 0 else 0)
            open_block = None
            if stop < 0:
                break
            continue
        found = _next_open(scan, pos, opens)
        if found is None:
            content.append(text[pos:])
            break
        at, open_block = found
        content.append(text[pos:at])
        pos = at + len(open_block.open)
    extra: dict[str, Any] = {}
    thought = "".join(reasoning).strip("\n")
    if thought:  # an empty block (``<think>\n\n</think>``) is no reasoning
        extra["reasoning_content"] = thought
    if calls:
        extra["tool_calls"] = calls
    return Message(ASSISTANT, "".join(content).strip("\n"), extra)


def _next_open(scan: Scanner, pos: int, opens: dict[str, Block]) -> tuple[int, Block] | None:
    """The earliest block opener at or after `pos` (the longest one at a tie)."""
    while (found := scan.find(pos)) is not None:
        at, texts = found
        hit = next((t for t in texts if t in opens), None)
        if hit is not None:
            return at, opens[hit]
        pos = at + 1
    return None


def _find(scan: Scanner, pos: int, literal: str) -> int:
    while (found := scan.find(pos)) is not None:
        if literal in found[1]:
            return found[0]
        pos = found[0] + 1
    return -1


def _reasoning_block(blocks: BlockMarkers) -> Block:
    return next(b for b in blocks.blocks if b.role == REASONING)


def _read_calls(body: str, calls: list[dict[str, Any]]) -> bool:
    try:
        value = parse_json(body)
    except ValueError:
        return False
    items = value if isinstance(value, list) else [value]
    parsed = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return False
        arguments = item.get("arguments", item.get("parameters", {}))
        parsed.append({"type": "function", "function": {"name": item["name"], "arguments": arguments}})
    calls.extend(parsed)
    return True

