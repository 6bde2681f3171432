"""One input line to the session: a user message (the model replies) or a slash command, handed
to the handler its topic module registered. Errors become notices, and a line that fails leaves
the conversation as it was (a user message whose reply failed is taken back); the session is
saved after every line."""

from __future__ import annotations

from collections.abc import Callable

from harness.chat.commands import configure, edit, files, general, inspect, turns
from harness.chat.events import Emit, Notice
from harness.chat.registry import Handler
from harness.chat.session import Session
from harness.chat.slash import parse_line, resolve
from harness.errors import CommandError, HarnessError
from harness.prompt.conversation import USER, Message
from harness.prompt.modes import REPLY

TABLES = (general.COMMANDS, turns.COMMANDS, edit.COMMANDS, inspect.COMMANDS, files.COMMANDS,
          configure.COMMANDS)


def handler(name: str) -> Handler:
    for table in TABLES:
        found = table.get(name)
        if found is not None:
            return found
    raise CommandError(f"/{name} has no handler")  # a registry entry without code: a bug


def handle(session: Session, line: str, emit: Emit, should_stop: Callable[[], bool] | None = None) -> None:
    """Act on one input line. Raises EOFError for /quit; reports errors as Notices."""
    name, arg = parse_line(line.rstrip("\n"))
    mark = session.trees.mark()
    try:
        if name is None:
            if arg.strip():
                session.trees.change(session.tree.append(Message(USER, arg)))
                session.generate(REPLY, "", emit, should_stop)
            return
        handler(resolve(name))(session, arg, emit, should_stop)
    except HarnessError as exc:
        if session.trees.rollback(mark):
            exc_text = f"{exc} (the conversation is as it was" + ("; Up recalls the line)" if name is None else ")")
        else:
            exc_text = str(exc)
        emit(Notice(exc_text, "error"))
    finally:
        session.save(emit)
