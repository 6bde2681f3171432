"""Editing the conversation: /messages, /edit, /delete, /role, /insert, /undo, /redo.

Edits change the tree in place (later messages stay); each is one undo step. The next prompt is
rendered again from the edited conversation, and the evaluator re-uses the KV cache for the
longest token prefix the new prompt shares with the last one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import EditRequest, Emit, MessageList, MessageRow, Notice
from harness.chat.registry import CommandTable
from harness.errors import CommandError
from harness.prompt.conversation import Message

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


def _index(word: str, usage: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise CommandError(f"usage: {usage}", hint="message numbers are listed by /messages") from None


@COMMANDS.command("messages")
def cmd_messages(session: Session, arg: str, emit: Emit, should_stop) -> None:
    tree = session.tree
    rows = []
    for i, node in enumerate(tree.path()):
        assert node.message is not None
        siblings = tree.siblings(i)
        rows.append(MessageRow(i, node.message.role, node.message.text, siblings.index(node.id) + 1,
                               len(siblings), "gen" in node.meta))
    emit(MessageList(tuple(rows)))


@COMMANDS.command("edit")
def cmd_edit(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/edit N [--editor] asks the REPL for the text; /edit N TEXT sets it."""
    word, _, text = arg.partition(" ")
    index = _index(word, "/edit N [TEXT|--editor]")
    message = session.tree.node_at(index).message
    assert message is not None
    if not text or text.strip() == "--editor":
        emit(EditRequest(index, message.text, editor=text.strip() == "--editor"))
        return
    if text.lstrip().startswith("{"):
        replacement = json_message(text)
        session.change(session.tree.replace_message(index, replacement))
        emit(Notice(f"message {index} replaced ({replacement.role})"))
        return
    set_content(session, index, text, emit)


def set_content(session: Session, index: int, text: str, emit: Emit) -> None:
    """The edit itself (the REPL calls this with the text it asked for)."""
    if session.tree.node_at(index).message.content == text:  # type: ignore[union-attr]
        emit(Notice(f"message {index} unchanged"))
        return
    session.change(session.tree.edit(index, text))
    emit(Notice(f"message {index} edited"))


@COMMANDS.command("delete")
def cmd_delete(session: Session, arg: str, emit: Emit, should_stop) -> None:
    index = _index(arg, "/delete N")
    role = session.tree.node_at(index).message.role  # type: ignore[union-attr]
    session.change(session.tree.delete(index))
    emit(Notice(f"deleted message {index} ({role}); /undo brings it back"))


@COMMANDS.command("role")
def cmd_role(session: Session, arg: str, emit: Emit, should_stop) -> None:
    word, _, role = arg.partition(" ")
    index = _index(word, "/role N ROLE")
    if not role.strip():
        raise CommandError("usage: /role N ROLE")
    session.change(session.tree.edit(index, role=role.strip()))
    emit(Notice(f"message {index} is now {role.strip()}"))


@COMMANDS.command("insert")
def cmd_insert(session: Session, arg: str, emit: Emit, should_stop) -> None:
    parts = arg.split(" ", 2)
    if len(parts) < 2:
        raise CommandError("usage: /insert N ROLE TEXT  or  /insert N {JSON message}")
    index = _index(parts[0], "/insert N ROLE TEXT")
    rest = arg.split(" ", 1)[1]
    message = json_message(rest) if rest.lstrip().startswith("{") else \
        Message(parts[1], parts[2] if len(parts) > 2 else "")
    session.change(session.tree.insert(index, message))
    emit(Notice(f"inserted a {message.role} message at {index}"))


def json_message(text: str) -> Message:
    """A message written as a JSON object (content parts, tool_calls, reasoning_content, ...)."""
    import json

    from harness.prompt.conversation import Conversation

    try:
        item = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"not a JSON message: {exc}",
                           hint='e.g. {"role": "assistant", "content": null, "tool_calls": [...]}') from None
    return Conversation.from_dicts([item], where="message").messages[0]


@COMMANDS.command("undo")
def cmd_undo(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not session.undo_stack:
        raise CommandError("nothing to undo")
    session.redo_stack.append(session.tree)
    session.tree = session.undo_stack.pop()
    emit(Notice(f"undone; {len(session.tree)} messages"))


@COMMANDS.command("redo")
def cmd_redo(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not session.redo_stack:
        raise CommandError("nothing to redo")
    session.undo_stack.append(session.tree)
    session.tree = session.redo_stack.pop()
    emit(Notice(f"redone; {len(session.tree)} messages"))


HANDLERS = COMMANDS.handlers
