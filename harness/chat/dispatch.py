"""One input line to the session: a user message (the model replies) or a slash command, handed
to the handler its topic module registered. Errors become notices, and a line that fails leaves
the conversation as it was (a user message whose reply failed is taken back); the session is
saved after every line. Any other exception (a bug, or an input no check caught) is one error
line too, its traceback written to the session log for a bug report: the session goes on."""

from __future__ import annotations

import traceback
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
        emit(Notice(_after(session, mark, str(exc), name), "error"))
    except EOFError:  # /quit, like Ctrl-D
        raise
    except Exception as exc:  # noqa: BLE001 — the REPL outlives any one command
        logged = session.io.log_error(line, traceback.format_exc(), emit)
        said = " ".join(str(exc).split())
        said = said if len(said) <= 200 else said[:200] + "…"
        what = f"/{name}" if name else "the turn"
        text = f"{what} failed: {type(exc).__name__}" + (f": {said}" if said else "")
        text += f"; the traceback is in {logged}" if logged else ""
        emit(Notice(_after(session, mark, text, name), "error"))
    finally:
        session.save(emit)


def _after(session: Session, mark, text: str, name: str | None) -> str:
    """`text`, saying the conversation is as it was when the failed line's changes were undone."""
    if session.trees.rollback(mark):
        return f"{text} (the conversation is as it was" + ("; Up recalls the line)" if name is None else ")")
    return text
