"""The session's own commands: /help, /new and /quit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import help_text, resolve, split_words

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


@COMMANDS.command("help")
def cmd_help(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if not words:
        emit(Notice(help_text()))
        return
    name = resolve(words[0].lstrip("/").lower())
    text = help_text(name)
    if name == "set":
        from harness.chat.commands.configure import settings_help

        text += "\n" + settings_help(session.prefs.help())
    emit(Notice(text))


@COMMANDS.command("quit")
def cmd_quit(session: Session, arg: str, emit: Emit, should_stop) -> None:
    raise EOFError


@COMMANDS.command("new")
def cmd_new(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.reset()
    emit(Notice("a fresh conversation (settings kept); /undo brings the old one back"))
