"""Can a template render a conversation, and what does the prompt leave out?

Asked before a change to the conversation or a switch of template is kept, so that no edit turns
a conversation the template renders into one it cannot (every later turn would fail), and so that
a template that silently drops a message's tool calls is said. The conversation is rendered as
it stands (no generation prompt); when that fails, prefixes find the first message it fails on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.prompt.conversation import Conversation, Message
from harness.prompt.templates import ChatTemplate


@dataclass(frozen=True)
class RenderCheck:
    error: str | None = None  # why the template cannot render the conversation (None: it can)
    failing: int | None = None  # the first message the rendering fails at
    dropped: tuple[int, ...] = ()  # messages whose tool calls the prompt does not show

    @property
    def renders(self) -> bool:
        return self.error is None

    def describe(self, template: str) -> str:
        where = f" at message {self.failing}" if self.failing is not None else ""
        return f"template {template} cannot render the conversation{where}: {self.error}"


def call_names(message: Message) -> list[str]:
    """The function names of a message's tool calls (what a prompt showing them must hold)."""
    calls = message.extra.get("tool_calls")
    names = []
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def _render(template: ChatTemplate, variables: Mapping[str, Any] | None, messages: list[dict[str, Any]]) -> str:
    return template.render(messages, add_generation_prompt=False, variables=variables)


def check_render(template: ChatTemplate, variables: Mapping[str, Any] | None,
                 conversation: Conversation) -> RenderCheck:
    """Whether `template` renders `conversation`, where it fails, and which messages' tool calls
    it leaves out of the prompt."""
    if not len(conversation):
        return RenderCheck()
    messages = conversation.to_dicts()
    try:
        prompt = _render(template, variables, messages)
    except HarnessError as exc:
        return RenderCheck(exc.message, _first_failing(template, variables, messages))
    dropped = tuple(i for i, m in enumerate(conversation)
                    if any(name not in prompt for name in call_names(m)))
    return RenderCheck(dropped=dropped)


def _first_failing(template: ChatTemplate, variables: Mapping[str, Any] | None,
                   messages: list[dict[str, Any]]) -> int | None:
    for end in range(1, len(messages)):
        try:
            _render(template, variables, messages[:end])
        except HarnessError:
            return end - 1
    return len(messages) - 1
