"""Commands that generate turns or choose among them: reply modes, /retry and /swipe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import help_text
from harness.errors import CommandError
from harness.prompt.conversation import Conversation
from harness.prompt.modes import CONTINUE, IMPERSONATE, PREFILL, REPLY

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


@COMMANDS.command("help")
def cmd_help(session: Session, arg: str, emit: Emit, should_stop) -> None:
    emit(Notice(help_text(arg)))


@COMMANDS.command("quit")
def cmd_quit(session: Session, arg: str, emit: Emit, should_stop) -> None:
    raise EOFError


@COMMANDS.command("reply")
def cmd_reply(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.generate(REPLY, "", emit, should_stop)


@COMMANDS.command("impersonate")
def cmd_impersonate(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.generate(IMPERSONATE, arg, emit, should_stop)


@COMMANDS.command("prefill")
def cmd_prefill(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not arg:
        raise CommandError("usage: /prefill TEXT")
    session.generate(PREFILL, arg, emit, should_stop)


@COMMANDS.command("continue")
def cmd_continue(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.generate(CONTINUE, "", emit, should_stop)


def regenerate(session: Session, index: int, emit: Emit, should_stop, forced=(), count: int = 1) -> None:
    """A new alternative of generated message `index`, asked for the way it was."""
    node = session.tree.node_at(index)
    meta = node.meta
    base = None
    if meta.get("base"):
        base = Conversation.from_dicts([meta["base"]]).messages[0]
    session.generate(meta.get("mode", REPLY), meta.get("text", ""), emit, should_stop, at=index,
                     base=base, forced=forced, count=count)


@COMMANDS.command("retry")
def cmd_retry(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/retry [N]: N new candidates (decoded together on a local model)."""
    index, _ = session.generation_at(-1)
    regenerate(session, index, emit, should_stop, count=_count(arg))
    emit(Notice(_candidates(session, index)))


def _count(arg: str) -> int:
    word = arg.strip()
    if not word:
        return 1
    if not word.isdigit() or not 1 <= int(word) <= 64:
        raise CommandError("the number of candidates must be 1..64")
    return int(word)


def _candidates(session: Session, index: int) -> str:
    siblings = session.tree.siblings(index)
    chosen = session.tree.node_at(index).id
    return f"message {index}: candidate {siblings.index(chosen) + 1} of {len(siblings)}"


@COMMANDS.command("swipe")
def cmd_swipe(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """next / prev / N among the alternatives of the last message; next past the last generates."""
    if not len(session.tree):
        raise CommandError("the conversation is empty")
    index = len(session.tree) - 1
    siblings = session.tree.siblings(index)
    current = siblings.index(session.tree.node_at(index).id)
    word, _, many = (arg.strip().lower() or "next").partition(" ")
    if many and word not in ("next", "n", ">"):
        raise CommandError("usage: /swipe next|prev|N, or /swipe next N")
    if word in ("next", "n", ">"):
        target = current + 1
        if target == len(siblings):
            if "gen" not in session.tree.node_at(index).meta:
                raise CommandError("this is the last alternative", hint="/swipe prev, or /swipe 1")
            regenerate(session, index, emit, should_stop, count=_count(many))  # past the last: new ones
            emit(Notice(_candidates(session, index)))
            return
    elif word in ("prev", "p", "<"):
        target = current - 1
        if target < 0:
            raise CommandError("this is the first alternative")
    elif word.isdigit():
        target = int(word) - 1
    else:
        raise CommandError("usage: /swipe next|prev|N")
    session.change(session.tree.choose(index, target))
    emit(Notice(_candidates(session, index) + ": " + _preview(session.conversation.messages[index].content)))


def _preview(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


HANDLERS = COMMANDS.handlers
