"""L016/L017: can a reply the model writes be stored as a message that re-renders as written?

The generator stores a turn as a message (:func:`harness.prompt.roundtrip.turn_message`) and the
next prompt renders it again; that prompt should show the model exactly what it saw and wrote.
The check plays the generator: after each probe conversation it renders the prompt (mode reply),
writes a reply into it, turns the reply into a message with ``turn_message`` and reports where
``check_round_trip`` finds the re-rendered prompt departs from the model's string.

The reply is one the model would write in this template's own format, or the check would blame a
template for a reply its model never writes: the template is asked how it shows an assistant turn
after these messages (with reasoning, then without), and each rendering that continues the prompt
is a reply the model could write (Qwen3's ``<think>`` block, raw's space after ``Assistant:``).
The template passes when one of them round-trips. When no rendering continues the prompt (the
generation prompt opens a thinking block that later turns do not show, or the earlier turns move
once a reply follows), the model writes the reply after the prompt as it stands, reasoning first
when the prompt opened a thinking block, and the check says where that departs (L016).

L017 (info) is the same reply ending in a newline, which models write before their end of turn:
a template that trims content (Llama 3's) renders the stored reply without it, so the next
prompt differs there. It is reported only when the template itself drops the newline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import TemplateError
from harness.lab.lint.findings import Finding
from harness.lab.lint.static import finding
from harness.prompt.blocks import Block, BlockMarkers, derive_blocks
from harness.prompt.conversation import ASSISTANT, REASONING, Conversation
from harness.prompt.modes import REPLY, PromptPlan, plan_prompt
from harness.prompt.roundtrip import TurnMessage, turn_message
from harness.prompt.templates import ChatTemplate

REASONING_TEXT = "Let me think about it."
REPLY_TEXT = "Sure. Two steps:\n\n1. Mix.\n2. Bake."
CONVERSATIONS = ("user only", "system first")  # of harness.lab.lint.runtime.BASIC_PROBES


@dataclass(frozen=True)
class Target:
    """The template under lint and its variables."""

    template: ChatTemplate  # lint's GuardedTemplate: ``guard.stopped`` once a render hit the limits
    variables: Mapping[str, Any]


def reply_findings(template: ChatTemplate, variables: Mapping[str, Any], generation_prompt: str,
                   conversations: Mapping[str, list[dict[str, Any]]]) -> list[Finding]:
    """L016/L017 for a reply after each of `conversations` (a finding from the first that shows it)."""
    ctx = Target(template, dict(variables))
    try:
        blocks = derive_blocks(template, variables, generation_prompt)
    except TemplateError:
        return []
    out: list[Finding] = []
    for i, (name, messages) in enumerate(conversations.items()):
        try:
            plan = plan_prompt(Conversation.from_dicts(messages), template, REPLY, variables=variables)
        except TemplateError:
            continue  # the probes (L001/L002) say why
        found = _conversation_findings(ctx, plan, blocks, name, newline=i == 0)
        out += [f for f in found if f.code not in {g.code for g in out}]
    return out  # the first conversation that shows each finding (L017: the first conversation)


def _conversation_findings(ctx: Target, plan: PromptPlan, blocks: BlockMarkers, probe: str, *,
                           newline: bool) -> list[Finding]:
    replies = model_replies(ctx, plan, blocks)
    first = _stored(ctx, plan, blocks, replies[0])
    kept = replies[0] if first.round_trip else next(
        (r for r in replies[1:] if _stored(ctx, plan, blocks, r).round_trip), None)
    if _stopped(ctx):
        return []  # a render hit the worker's limits: not the template's round trip
    if kept is None:
        note = first.note
        if first.message.extra and _stored(ctx, plan, None, replies[0]).round_trip:
            note += ("; harness stores the reasoning apart (reasoning_content), which this template does not "
                     "render: kept in the content, the reply would round-trip")
        return [finding("L016", f"a reply does not re-render as the model wrote it: {note}", probe=probe)]
    if not newline or _keeps_newline(ctx, plan):
        return []  # a template that keeps the newline: a message shape of harness's loses it, if anything
    result = _stored(ctx, plan, blocks, kept + "\n")
    if result.round_trip or _stopped(ctx):
        return []
    return [finding("L017", f"a reply ending in a newline does not re-render as written: {result.note}",
                    probe=probe)]


def model_replies(ctx: Target, plan: PromptPlan, blocks: BlockMarkers) -> list[str]:
    """Replies the model could write after `plan.prompt`, in this template's format."""
    assert plan.before is not None  # mode reply
    replies: list[str] = []
    for message in ({"role": ASSISTANT, "reasoning_content": REASONING_TEXT, "content": REPLY_TEXT},
                    {"role": ASSISTANT, "content": REPLY_TEXT}):
        try:
            shown = ctx.template.render([*plan.before.to_dicts(), message], add_generation_prompt=False,
                                        variables=ctx.variables)
        except TemplateError:
            continue
        end = shown.rfind(REPLY_TEXT)
        if shown.startswith(plan.prompt) and end >= len(plan.prompt):
            reply = shown[len(plan.prompt):end + len(REPLY_TEXT)]
            if reply not in replies:
                replies.append(reply)
    if replies:
        return replies
    block = _opened_block(plan.prompt, blocks)
    return [f"{REASONING_TEXT}\n{block.close}\n\n{REPLY_TEXT}" if block else REPLY_TEXT]


def _keeps_newline(ctx: Target, plan: PromptPlan) -> bool:
    """Whether the template itself renders content ending in a newline with the newline."""
    assert plan.before is not None
    try:
        shown = ctx.template.render([*plan.before.to_dicts(), {"role": ASSISTANT, "content": REPLY_TEXT + "\n"}],
                                    add_generation_prompt=False, variables=ctx.variables)
    except TemplateError:
        return False
    return REPLY_TEXT + "\n" in shown


def _opened_block(prompt: str, blocks: BlockMarkers) -> Block | None:
    """The thinking block the prompt leaves open (the generator starts the reply inside it)."""
    if not blocks.prompt_opens_reasoning:
        return None
    text = prompt.rstrip()
    opened = [(text.rfind(b.open.strip()), b) for b in blocks.blocks
              if b.role == REASONING and b.open.strip() and b.open.strip() in text]
    return max(opened, key=lambda pair: pair[0])[1] if opened else None


def _stored(ctx: Target, plan: PromptPlan, blocks: BlockMarkers | None, reply: str) -> TurnMessage:
    """The generator's message for `reply` and whether it round-trips (render errors included);
    without `blocks`, the reply stays the message's content (no reasoning or tool calls apart)."""
    assert plan.before is not None and plan.writer is not None  # mode reply has both
    return turn_message(ctx.template, ctx.variables, plan.before, plan.prompt, plan.opened, reply,
                        plan.writer, blocks, in_reasoning=blocks is not None and blocks.prompt_opens_reasoning)


def _stopped(ctx: Target) -> bool:
    guard = getattr(ctx.template, "guard", None)
    return guard is not None and guard.stopped is not None
