"""A generated turn -> the message that re-renders as the model wrote it, and whether it does.

What the model saw and wrote is one string: the prompt up to its open turn (`prefix`) and the
turn's text. Stored as a message and rendered again (mode as-is, the conversation before it plus
the message), a template may supply part of that string itself — ``raw`` writes ``Assistant: ``
with its space, so a reply the model began with a space must not keep it — and may rewrite the
rest (llama3 ``| trim``s content, Qwen3 drops earlier reasoning). So the template is asked: the
message is rendered once with a placeholder for its content, and what it puts before and after
the placeholder is the scaffold it supplies. The content is what lies between, in the text the
model saw and wrote; nothing the model wrote is removed that the template does not put back.
Reasoning and tool calls the text holds become ``reasoning_content`` / ``tool_calls``
(:func:`harness.prompt.response.parse_response`). Then the message is rendered for real:
``round_trip`` says whether that rendering reproduces the model's string, and where it first
differs when it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.prompt.blocks import BlockMarkers
from harness.prompt.conversation import ASSISTANT, Conversation, Message
from harness.prompt.response import parse_response
from harness.prompt.segments import sentinel
from harness.prompt.templates import ChatTemplate

PLACEHOLDER = sentinel(9_999)


@dataclass(frozen=True)
class TurnMessage:
    """A generated turn as a message, and whether it renders back to what the model wrote."""

    message: Message
    round_trip: bool
    differs_at: int | None = None  # offset into the turn's text where the re-render first differs
    note: str = ""  # why it does not round-trip (one line), empty when it does

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message.to_dict(), "round_trip": self.round_trip}
        if not self.round_trip:
            out["round_trip_note"] = self.note
        return out


def _render(template: ChatTemplate, messages: list[dict[str, Any]], variables: Mapping[str, Any] | None) -> str:
    return template.render(messages, add_generation_prompt=False, variables=variables)


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def turn_message(template: ChatTemplate, variables: Mapping[str, Any] | None, before: Conversation,
                 prompt: str, opened: str, turn: str, writer: str, blocks: BlockMarkers | None = None, *,
                 closed: bool = False, in_reasoning: bool = False) -> TurnMessage:
    """The message of `writer`'s turn following the messages of `before`: `prompt` is what the
    model was given, ending in `opened` (text already in the open turn: a prefill, a continued
    message), and `turn` the whole turn (`opened` and what the model wrote in its turn);
    `closed`: the model wrote its turn's close itself (it went on past it)."""
    written = prompt + turn[len(opened):]
    try:
        shaped = _render(template, [*before.to_dicts(), {"role": writer, "content": PLACEHOLDER}], variables)
    except HarnessError:
        shaped = ""
    at = shaped.find(PLACEHOLDER)
    content = turn
    if at >= 0 and written.startswith(shaped[:at]):
        content = written[at:]
        after = shaped[at + len(PLACEHOLDER):]
        supplied = next((k for k in range(min(len(after), len(content)), 0, -1)
                         if content.endswith(after[:k]) and (closed or not after[:k].strip())), 0)
        content = content[: len(content) - supplied]  # the close (or whitespace) the template writes
    message = Message(writer, content)
    if writer == ASSISTANT and blocks is not None:
        parsed = parse_response(content, blocks, in_reasoning=in_reasoning)
        if parsed.extra:  # reasoning or tool calls: HF's message shape; plain text stays as written
            message = parsed
    return check_round_trip(template, variables, before, message, written, len(prompt) - len(opened),
                            shaped_ok=at >= 0)


def check_round_trip(template: ChatTemplate, variables: Mapping[str, Any] | None, before: Conversation,
                     message: Message, written: str, prefix_len: int, *, shaped_ok: bool = True) -> TurnMessage:
    """Does `before` + `message`, rendered as-is, begin with `written` (the model's string)?"""
    try:
        rendered = _render(template, [*before.to_dicts(), message.to_dict()], variables)
    except HarnessError as exc:
        return TurnMessage(message, False, 0, f"the template cannot render the message: {exc.message}")
    if rendered.startswith(written):
        return TurnMessage(message, True)
    where = _common(rendered, written)
    offset = max(where - prefix_len, 0)
    if where < prefix_len:
        why = "the template renders the earlier conversation differently once the reply follows"
    elif not shaped_ok:
        why = "the template does not render the content of a message in this role where it can be found"
    else:
        why = "the template rewrites the reply"
    got = rendered[where:where + 12]
    wanted = written[where:where + 12]
    return TurnMessage(message, False, offset,
                       f"{why}: at character {offset} of the turn the model wrote {wanted!r}, "
                       f"the re-rendered prompt has {got!r}")
