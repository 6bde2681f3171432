"""Messages and conversations as immutable values, and the messages-file format.

A messages file (YAML or JSON) is either a list of ``{role, content}`` mappings or a mapping
with a ``messages`` list. Messages take the shapes Hugging Face passes to ``apply_chat_template``:
``content`` a string, ``null`` (kept as ``None``: templates test ``content is none``) or a list of
typed parts (``{"type": "text", "text": ...}``, ``{"type": "image"}``, unknown types passed
through); ``tool_calls`` (``arguments`` a string or an object), ``tool_call_id``/``name`` on tool
messages, ``reasoning_content`` (or ``thinking``) — every other key rides along in ``extra``.

Roles are free strings (templates decide what they accept); the roles harness attributes tokens
to are ``ATTRIBUTION_ROLES``: ``system``, ``user``, ``assistant``, ``template`` (scaffolding),
``reasoning`` (thinking), ``tool_call`` (calls the assistant writes) and ``tool`` (results).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import MessagesError
from harness.untrusted import check_text

SYSTEM = "system"
USER = "user"
ASSISTANT = "assistant"
TEMPLATE = "template"  # scaffolding the chat template added around message content
REASONING = "reasoning"  # thinking: reasoning_content, or <think>...</think>-style text
TOOL_CALL = "tool_call"  # the tool calls an assistant turn makes
TOOL = "tool"  # tool results
ATTRIBUTION_ROLES = (SYSTEM, USER, ASSISTANT, TEMPLATE, REASONING, TOOL_CALL, TOOL)
TOOL_MESSAGE_ROLES = frozenset({"tool", "ipython", "function", "tool_response"})
REASONING_KEYS = ("reasoning_content", "thinking")
# A role is a name the template prints outside content: no newline, no "<|im_end|>" or "[INST]".
ROLE_RE = re.compile(r"[^\W_][\w .:/-]{0,63}")

Content = Any  # str | None | list of part mappings, as apply_chat_template takes it


@dataclass(frozen=True)
class Message:
    role: str
    content: Content
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.extra), "role": self.role, "content": _copy(self.content)}

    @property
    def text(self) -> str:
        """The content as plain text: ``None`` is empty, a part list is its text parts joined."""
        return content_text(self.content)

    @property
    def reasoning(self) -> str | None:
        for key in REASONING_KEYS:
            if isinstance(self.extra.get(key), str):
                return self.extra[key]
        return None


def content_text(content: Content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text") or "") for p in content
                   if isinstance(p, Mapping) and p.get("type") == "text")


def attribution_role(message_role: str) -> str:
    """The role a message's content is attributed to (tool results under any template's name)."""
    return TOOL if message_role in TOOL_MESSAGE_ROLES else message_role


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...] = ()

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self):
        return iter(self.messages)

    @property
    def last(self) -> Message | None:
        return self.messages[-1] if self.messages else None

    def append(self, role: str, content: str) -> Conversation:
        return Conversation(self.messages + (Message(role, content),))

    def drop_last(self) -> Conversation:
        return Conversation(self.messages[:-1])

    def with_system(self, text: str | None) -> Conversation:
        """Replace (or remove, with None/empty) the leading system message."""
        rest = self.messages[1:] if self.messages and self.messages[0].role == SYSTEM else self.messages
        head = (Message(SYSTEM, text),) if text else ()
        return Conversation(head + rest)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.messages]

    @classmethod
    def of(cls, *pairs: tuple[str, str]) -> Conversation:
        return cls(tuple(Message(r, c) for r, c in pairs))

    @classmethod
    def from_dicts(cls, items: Iterable[Any], *, where: str = "messages") -> Conversation:
        messages = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise MessagesError(f"message {i} is not a mapping", where=where,
                                    hint="each message needs 'role' and 'content'")
            role, content = item.get("role"), item.get("content", "")
            if not isinstance(role, str) or not role:
                raise MessagesError(f"message {i} has no 'role' string", where=where)
            if not ROLE_RE.fullmatch(role):
                raise MessagesError(f"message {i}: role {role[:40]!r} is not a role name", where=where,
                                    hint="a role is one word-like name (letters, digits, space, _.:/-), "
                                         "no newlines or control-token text, at most 64 characters")
            _check_content(content, f"message {i} ('{role}')", where)
            _check_tool_calls(item.get("tool_calls"), f"message {i} ('{role}')", where)
            extra = {k: _copy(v) for k, v in item.items() if k not in ("role", "content")}
            check_text([content, extra], error=MessagesError, where=where, what=f"message {i} ('{role}')")
            messages.append(Message(role, _copy(content), extra))
        return cls(tuple(messages))


def _check_content(content: Any, what: str, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, Sequence) or isinstance(content, bytes | bytearray):
        raise MessagesError(f"{what}: content must be a string, null or a list of parts",
                            where=where, hint='e.g. [{"type": "text", "text": "hi"}, {"type": "image"}]')
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise MessagesError(f"{what}: content part {j} is not a mapping with a 'type'",
                                where=where, hint='e.g. {"type": "text", "text": "hi"}')
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise MessagesError(f"{what}: text part {j} needs a 'text' string", where=where)


def _check_tool_calls(calls: Any, what: str, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, Sequence) or isinstance(calls, str):
        raise MessagesError(f"{what}: tool_calls must be a list", where=where)
    for j, call in enumerate(calls):
        function = call.get("function", call) if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise MessagesError(f"{what}: tool call {j} needs a function name", where=where,
                                hint='{"type": "function", "function": {"name": ..., "arguments": ...}}')
        if not isinstance(function.get("arguments", {}), str | Mapping):
            raise MessagesError(f"{what}: tool call {j}: arguments must be a string or an object",
                                where=where)


MAX_MESSAGES_CHARS = 64 * 1024 * 1024


def parse_messages(text: str, *, where: str) -> Conversation:
    """Parse a messages file's text (JSON, or YAML when it is not JSON)."""
    if len(text) > MAX_MESSAGES_CHARS:
        raise MessagesError(f"the file is {len(text) // 2**20} MB; messages files are limited to "
                            f"{MAX_MESSAGES_CHARS // 2**20} MB", where=where, hint="split or shorten it")
    try:
        return _parse(text, where)
    except RecursionError:
        raise MessagesError("nested too deeply to be a list of messages", where=where,
                            hint="a messages file is a flat list of {role, content}") from None


def _parse(text: str, where: str) -> Conversation:
    data: Any
    try:
        data = json.loads(text)
    except ValueError:
        import yaml

        from harness.yamlio import load_yaml

        try:
            data, _ = load_yaml(text)
        except yaml.YAMLError as exc:
            from harness.yamlio import error_location

            loc, problem = error_location(exc, where)
            raise MessagesError(f"not valid YAML or JSON: {problem}", where=loc,
                                hint="fix the file's syntax") from None
    if isinstance(data, Mapping):
        if "messages" not in data:
            raise MessagesError("a mapping needs a 'messages' list", where=where)
        data = data["messages"]
    if not isinstance(data, Sequence) or isinstance(data, str):
        raise MessagesError("expected a list of {role, content} messages", where=where)
    return Conversation.from_dicts(data, where=where)
