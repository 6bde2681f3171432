"""Generated assistant text -> a message: reasoning, content and tool calls.

The same blocks that attribute roles (:mod:`harness.prompt.blocks`) cut the text: what lies in a
thinking block becomes ``reasoning_content``, each tool-call block a ``tool_calls`` entry (its body
read as JSON ``{"name", "arguments"}``, or a list of them; a body that is not JSON stays in the
content), the rest ``content`` with the whitespace the template puts around blocks trimmed, as
Hugging Face's ``parse_response`` leaves it. A render -> parse -> render round trip is the check:
parsing what a template wrote for a message gives back that message.
"""

from __future__ import annotations

import json
from typing import Any

from harness.prompt.blocks import KNOWN, Block, BlockMarkers
from harness.prompt.conversation import ASSISTANT, REASONING, Message


def parse_response(text: str, blocks: BlockMarkers = KNOWN, *, in_reasoning: bool = False) -> Message:
    """The assistant message `text` spells; `in_reasoning`: the text starts inside a thinking
    block (the generation prompt opened it)."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    pos = 0
    open_block = _reasoning_block(blocks) if in_reasoning else None
    while pos <= len(text):
        if open_block is not None:
            stop = text.find(open_block.close, pos) if open_block.close else -1
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
        found = [(text.find(b.open, pos), -len(b.open), i) for i, b in enumerate(blocks.blocks)
                 if b.open and text.find(b.open, pos) >= 0]
        if not found:
            content.append(text[pos:])
            break
        at, _, i = min(found)
        content.append(text[pos:at])
        open_block = blocks.blocks[i]
        pos = at + len(open_block.open)
    extra: dict[str, Any] = {}
    thought = "".join(reasoning).strip("\n")
    if thought:  # an empty block (``<think>\n\n</think>``) is no reasoning
        extra["reasoning_content"] = thought
    if calls:
        extra["tool_calls"] = calls
    return Message(ASSISTANT, "".join(content).strip("\n"), extra)


def _reasoning_block(blocks: BlockMarkers) -> Block:
    return next(b for b in blocks.blocks if b.role == REASONING)


def _read_calls(body: str, calls: list[dict[str, Any]]) -> bool:
    try:
        value = json.loads(body)
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

