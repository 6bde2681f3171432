"""Messages and conversations as immutable values, and the messages-file format.

A messages file (YAML or JSON) is either a list of ``{role, content}`` mappings or a mapping
with a ``messages`` list. Roles are free strings (templates decide what they accept); the four
roles harness attributes tokens to are ``system``, ``user``, ``assistant`` and ``template``.
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
ATTRIBUTION_ROLES = (SYSTEM, USER, ASSISTANT, TEMPLATE)
# A role is a name the template prints outside content: no newline, no "<|im_end|>" or "[INST]".
ROLE_RE = re.compile(r"[^\W_][\w .:/-]{0,63}")


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.extra), "role": self.role, "content": self.content}


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
            if content is None:
                content = ""
            if not isinstance(content, str):
                raise MessagesError(f"message {i} ('{role}'): content must be a string", where=where)
            extra = {k: v for k, v in item.items() if k not in ("role", "content")}
            check_text([content, extra], error=MessagesError, where=where, what=f"message {i} ('{role}')")
            messages.append(Message(role, content, extra))
        return cls(tuple(messages))


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
