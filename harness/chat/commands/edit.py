"""Editing the conversation: /messages, /show, /edit, /delete, /role, /insert, /undo, /redo.

Edits change the tree in place (later messages stay); each is one undo step. The next prompt is
rendered again from the edited conversation, and the evaluator re-uses the KV cache for the
longest token prefix the new prompt shares with the last one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import EditRequest, Emit, MessageList, MessageRow, MessageShown, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import split_words, take_words
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
    if split_words(arg):
        raise CommandError("usage: /messages", hint="/show N prints one message whole")
    tree = session.tree
    rows = []
    for i, node in enumerate(tree.path()):
        assert node.message is not None
        siblings = tree.siblings(i)
        rows.append(MessageRow(i, node.message.role, node.message.text, siblings.index(node.id) + 1,
                               len(siblings), "gen" in node.meta))
    emit(MessageList(tuple(rows)))


@COMMANDS.command("show")
def cmd_show(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    index = _index(words[0] if len(words) == 1 else "", "/show N")
    node = session.tree.node_at(index)
    assert node.message is not None
    siblings = session.tree.siblings(index)
    emit(MessageShown(MessageRow(index, node.message.role, node.message.content,
                                 siblings.index(node.id) + 1, len(siblings), "gen" in node.meta)))


@COMMANDS.command("edit")
def cmd_edit(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/edit N [--editor] asks the REPL for the text; /edit N TEXT sets it."""
    words, text = take_words(arg, 1)
    index = _index(words[0] if words else "", "/edit N [TEXT|--editor]")
    message = session.tree.node_at(index).message
    assert message is not None
    if not text or text.strip() == "--editor":
        emit(EditRequest(index, message.text, editor=text.strip() == "--editor"))
        return
    if text.lstrip().startswith("{"):
        replacement = json_message(text)
        session.trees.change(session.tree.replace_message(index, replacement))
        emit(Notice(f"message {index} replaced ({replacement.role})"))
        return
    set_content(session, index, text, emit)


def set_content(session: Session, index: int, text: str, emit: Emit) -> None:
    """The edit itself (the REPL calls this with the text it asked for)."""
    if session.tree.node_at(index).message.content == text:  # type: ignore[union-attr]
        emit(Notice(f"message {index} unchanged"))
        return
    session.trees.change(session.tree.edit(index, text))
    emit(Notice(f"message {index} edited"))


@COMMANDS.command("delete")
def cmd_delete(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    index = _index(words[0] if len(words) == 1 else "", "/delete N")
    role = session.tree.node_at(index).message.role  # type: ignore[union-attr]
    session.trees.change(session.tree.delete(index))
    emit(Notice(f"deleted message {index} ({role}); /undo brings it back"))


@COMMANDS.command("role")
def cmd_role(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if len(words) != 2 or not words[1].strip():
        raise CommandError("usage: /role N ROLE")
    index, role = _index(words[0], "/role N ROLE"), words[1]
    session.trees.change(session.tree.edit(index, role=role))
    emit(Notice(f"message {index} is now {role}"))


@COMMANDS.command("insert")
def cmd_insert(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words, rest = take_words(arg, 1)
    if not words or not rest:
        raise CommandError("usage: /insert N ROLE TEXT  or  /insert N {JSON message}")
    index = _index(words[0], "/insert N ROLE TEXT")
    if rest.lstrip().startswith("{"):
        message = json_message(rest)
    else:
        role, text = take_words(rest, 1)
        message = Message(role[0], text)
    session.trees.change(session.tree.insert(index, message))
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
    session.trees.undo()
    emit(Notice(f"undone; {len(session.tree)} messages"))


@COMMANDS.command("redo")
def cmd_redo(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.trees.redo()
    emit(Notice(f"redone; {len(session.tree)} messages"))
