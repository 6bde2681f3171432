"""Files a session reads and writes: /save, /load, /export, /sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import split_words
from harness.errors import CommandError

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


def _file(arg: str, usage: str) -> str:
    words = split_words(arg)
    if len(words) != 1 or not words[0]:
        raise CommandError(f"usage: {usage}", hint="quote a path with spaces")
    return words[0]


@COMMANDS.command("save")
def cmd_save(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.atomic import save_json

    arg = _file(arg, "/save FILE")
    save_json(arg, {"messages": session.conversation.to_dicts(), "settings": session.params.to_dict(),
                    "model": session.bench.info.name, "template": session.bench.template.name})
    emit(Notice(f"saved {len(session.conversation)} messages to {arg}"))


@COMMANDS.command("load")
def cmd_load(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.readers import read_messages

    arg = _file(arg, "/load FILE")
    from harness.chat.tree import Tree

    session.trees.change(Tree.from_conversation(read_messages(arg)))
    emit(Notice(f"loaded {len(session.conversation)} messages from {arg} (/undo goes back)"))


@COMMANDS.command("export")
def cmd_export(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.atomic import write_text
    from harness.chat.saved import export_json, export_markdown

    arg = _file(arg, "/export FILE.md|FILE.json")
    if not arg.lower().endswith((".md", ".json")):
        raise CommandError("usage: /export FILE.md|FILE.json")
    if arg.lower().endswith(".md"):
        write_text(arg, export_markdown(session))
    else:
        write_text(arg, export_json(session))
    emit(Notice(f"exported {len(session.conversation)} messages to {arg}"))


@COMMANDS.command("sessions")
def cmd_sessions(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.chat.saved import list_sessions

    words = split_words(arg)
    if len(words) > 1 or words and not words[0].isdigit():
        raise CommandError(f"/sessions {arg}: expected a number of sessions", hint="/sessions [N]")
    rows = list_sessions()
    if not rows:
        emit(Notice("no saved sessions yet"))
        return
    current = session.io.autosave.id if session.io.autosave is not None else None
    lines = [f"{'*' if r.id == current else ' '} {r.id}  {r.when}  {r.messages:3d} msgs  {r.title}"
             for r in rows[-int(words[0] if words else 20):]]
    lines.append("harness chat --resume ID continues one")
    emit(Notice("\n".join(lines)))

