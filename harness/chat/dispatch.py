"""One input line to the session: a user message (the model replies) or a slash command, handed
to the handler its topic module registered. Errors become notices, and a line that fails leaves
the conversation as it was (a user message whose reply failed is taken back); the session is
saved after every line. Any other exception (a bug, or an input no check caught) is one error
line too, its traceback written to the session log for a bug report: the session goes on."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from harness.chat.commands import configure, edit, files, general, inspect, turns
from harness.chat.commands.edit import set_content
from harness.chat.events import Emit, Notice
from harness.chat.registry import Handler
from harness.chat.render_guard import guard, snapshot
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
    name, arg = parse_line(line)

    def act() -> None:
        if name is None:
            if arg.strip():
                session.trees.change(session.tree.append(Message(USER, arg)))
                session.generate(REPLY, "", emit, should_stop)
        else:
            handler(resolve(name))(session, arg, emit, should_stop)

    _guarded(session, emit, act, typed=name is None, line=line, what=f"/{name}" if name else "the turn")


def answer_edit(session: Session, index: int, text: str, emit: Emit) -> None:
    """The text the REPL asked for after `/edit N`, applied as one line is."""
    _guarded(session, emit, lambda: set_content(session, index, text, emit), typed=False,
             line=f"/edit {index}", what="/edit")


def keep_candidate(session: Session, index: int, number: int, emit: Emit) -> None:
    """The candidate a key chose after /retry N or /swipe: chosen as part of that change (one
    /undo still takes the whole retry back)."""
    from harness.chat.commands.turns import choose

    _guarded(session, emit, lambda: choose(session, index, number - 1, emit, amend=True), typed=False,
             line=f"(candidate {number})", what="choosing a candidate")


def _guarded(session: Session, emit: Emit, act: Callable[[], None], *, typed: bool, line: str, what: str) -> None:
    """Run `act`; an error is a notice and puts the conversation back as it was, and so does a
    change the template cannot render; the session is saved either way. Any other exception is
    one error line too, its traceback in the session log."""
    mark = session.trees.mark()
    before = snapshot(session)
    try:
        act()
        guard(session, before, emit)
    except HarnessError as exc:
        emit(Notice(_after(session, mark, str(exc), typed), "error"))
    except EOFError:  # /quit, like Ctrl-D
        raise
    except Exception as exc:  # noqa: BLE001 — the REPL outlives any one command
        logged = session.io.log_error(line, traceback.format_exc(), emit)
        said = " ".join(str(exc).split())
        said = said if len(said) <= 200 else said[:200] + "…"
        text = f"{what} failed: {type(exc).__name__}" + (f": {said}" if said else "")
        text += f"; the traceback is in {logged}" if logged else ""
        emit(Notice(_after(session, mark, text, typed), "error"))
    finally:
        session.save(emit)


def _after(session: Session, mark, text: str, typed: bool) -> str:
    """`text`, saying the conversation is as it was when the failed line's changes were undone."""
    if session.trees.rollback(mark):
        return f"{text} (the conversation is as it was" + ("; Up recalls the line)" if typed else ")")
    return text
