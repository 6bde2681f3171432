"""Conversation + mode -> the exact prompt string, its segments and who writes next.

Modes:
  as-is        the conversation exactly, no generation prompt (what ``score`` renders)
  reply        with the generation prompt; the model writes the assistant turn (default)
  prefill      reply + the start of the assistant turn
  impersonate  an open user turn, optionally begun, that the model writes
  continue     the last message left open, whatever its role (``continue_final_message``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import ModeError
from harness.prompt.blocks import split_reasoning
from harness.prompt.conversation import ASSISTANT, USER, Conversation
from harness.prompt.mode_names import AS_IS, CONTINUE, IMPERSONATE, MODES, PREFILL, REPLY
from harness.prompt.segments import CONTENT, Segment, clip, render_segmented, sentinel, tile
from harness.prompt.templates import ChatTemplate

__all__ = ["AS_IS", "CONTINUE", "IMPERSONATE", "MODES", "PREFILL", "REPLY", "PromptPlan", "plan_prompt"]


@dataclass(frozen=True)
class PromptPlan:
    """The prompt the model sees, its segments, and the role of the text generated after it."""

    prompt: str
    segments: tuple[Segment, ...]
    writer: str | None  # role the generated text starts in; None for as-is
    mode: str
    opened: str = ""  # text already written in the open turn (prefill / impersonate text)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # (what, text) of every non-content string of the messages the template may print (roles,
    # names, extra keys): checked for control-token text like content (Workbench.plan)
    fields: tuple[tuple[str, str], ...] = ()
    # the messages before the turn generated after this prompt (a continued message excluded:
    # the turn replaces it)
    before: Conversation | None = None


def plan_prompt(conversation: Conversation, template: ChatTemplate, mode: str = REPLY, *,
                text: str = "", variables: Mapping[str, Any] | None = None) -> PromptPlan:
    plan = _plan(conversation, template, mode, text, variables)
    before = Conversation(conversation.messages[:-1]) if mode == CONTINUE else conversation
    return replace(plan, segments=tuple(split_reasoning(plan.prompt, plan.segments)), before=before)


def _plan(conversation: Conversation, template: ChatTemplate, mode: str, text: str,
          variables: Mapping[str, Any] | None) -> PromptPlan:
    messages = conversation.to_dicts()
    if mode == AS_IS:
        prompt, segments = render_segmented(template, messages, add_generation_prompt=False,
                                            variables=variables)
        return PromptPlan(prompt, tuple(segments), None, mode)
    if mode in (REPLY, PREFILL):
        prompt, segments = render_segmented(template, messages, add_generation_prompt=True,
                                            variables=variables)
        if mode == PREFILL and text:
            segments = [*segments, Segment(len(prompt), len(prompt) + len(text), ASSISTANT, CONTENT)]
            prompt += text
        return PromptPlan(prompt, tuple(segments), ASSISTANT, mode, opened=text if mode == PREFILL else "")
    if mode == IMPERSONATE:
        return _impersonate(messages, template, text, variables)
    if mode == CONTINUE:
        return _continue(conversation, template, variables)
    raise ModeError(f"unknown mode '{mode}'", hint=f"one of {', '.join(MODES)}")


def _impersonate(messages: list[dict[str, Any]], template: ChatTemplate, text: str,
                 variables: Mapping[str, Any] | None) -> PromptPlan:
    """Render the conversation plus a user message, cut where that message's content begins."""
    marker = sentinel(len(messages))
    try:
        rendered, segments = render_segmented(template, [*messages, {"role": USER, "content": marker}],
                                              add_generation_prompt=False, variables=variables)
    except Exception as exc:
        raise ModeError(f"cannot open a user turn after this conversation: {exc}",
                        hint="the template may require alternating roles") from None
    cut = rendered.rfind(marker)
    if cut < 0:
        raise ModeError("the template drops the new user message; cannot impersonate")
    kept = clip(segments, cut)
    kept = [s for s in kept if s.start < cut]
    prompt = rendered[:cut] + text
    if text:
        kept.append(Segment(cut, cut + len(text), USER, CONTENT))
    return PromptPlan(prompt, tuple(kept), USER, IMPERSONATE, opened=text)


CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


def _continue(conversation: Conversation, template: ChatTemplate,
              variables: Mapping[str, Any] | None) -> PromptPlan:
    """transformers' ``continue_final_message``: a tag is appended to the final message, the
    conversation rendered without a generation prompt and cut where the tag begins (trailing
    whitespace trimmed too when the template ate the tag's space)."""
    last = conversation.last
    if last is None:
        raise ModeError("nothing to continue: the conversation is empty")
    messages = conversation.to_dicts()
    final = last.text
    messages[-1]["content"] = _tagged(last.content)
    rendered, segments = render_segmented(template, messages, add_generation_prompt=False,
                                          variables=variables)
    if final.strip() not in rendered or CONTINUE_TAG.strip() not in rendered:
        raise ModeError("the final message does not appear in the rendered prompt; cannot continue it",
                        hint="the template rewrites or drops it")
    at = rendered.rindex(CONTINUE_TAG.strip())
    end = at if rendered[at: at + len(CONTINUE_TAG)] == CONTINUE_TAG else len(rendered[:at].rstrip())
    prompt = rendered[:end]
    kept = [(s.start, s.end, s.role) for s in clip(segments, end) if s.kind == CONTENT]
    return PromptPlan(prompt, tuple(tile(len(prompt), kept)), last.role, CONTINUE, opened=final)


def _tagged(content: Any) -> Any:
    """The final message's content with the tag after its text (its last text part, as
    transformers picks it, when the content is a list of parts)."""
    if not isinstance(content, list):
        return (content or "") + CONTINUE_TAG
    parts = list(content)
    for i in range(len(parts) - 1, -1, -1):
        if isinstance(parts[i], Mapping) and isinstance(parts[i].get("text"), str):
            parts[i] = {**parts[i], "text": parts[i]["text"] + CONTINUE_TAG}
            return parts
    raise ModeError("nothing to continue: the final message has no text part")
