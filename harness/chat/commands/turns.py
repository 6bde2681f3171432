"""Commands that generate turns or choose among them: the reply modes, /adopt, /retry and
/swipe.

A retry under a fixed seed derives a new seed (shown) so each candidate differs; ``/retry same``
repeats the turn's own seed. A swipe acts on the last message, or on message N with ``--at N``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import options, split_words, take_words
from harness.errors import CommandError
from harness.prompt.conversation import USER, Conversation
from harness.prompt.modes import CONTINUE, IMPERSONATE, PREFILL, REPLY

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


@COMMANDS.command("reply")
def cmd_reply(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.generate(REPLY, "", emit, should_stop)


@COMMANDS.command("impersonate")
def cmd_impersonate(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.generate(IMPERSONATE, take_words(arg, 0)[1], emit, should_stop)


@COMMANDS.command("prefill")
def cmd_prefill(session: Session, arg: str, emit: Emit, should_stop) -> None:
    text = take_words(arg, 0)[1]
    if not text:
        raise CommandError("usage: /prefill TEXT")
    session.generate(PREFILL, text, emit, should_stop)


@COMMANDS.command("continue")
def cmd_continue(session: Session, arg: str, emit: Emit, should_stop) -> None:
    session.generate(CONTINUE, "", emit, should_stop)


@COMMANDS.command("adopt")
def cmd_adopt(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """The turn the model wrote past its own becomes the next message (as the model wrote it)."""
    last = session.tree.node_at(-1).id if len(session.tree) else None
    beyond = session.transcript.take_beyond(last)
    session.trees.change(session.tree.append(beyond, {"adopted": True}))
    what = "user message" if beyond.role == USER else f"{beyond.role} message"
    emit(Notice(f"adopted the model's {what} as message {len(session.tree) - 1}; "
                "send a line, or /reply, for the next turn"))


def regenerate(session: Session, index: int, emit: Emit, should_stop, forced=(), *,
               same_seed: bool = True, count: int = 1) -> None:
    """New alternatives (`count`, decoded together on a local model) of generated message `index`,
    asked for the way it was. Under a fixed seed and not `same_seed`, the seed moves on by the
    number of candidates so far (shown)."""
    node = session.tree.node_at(index)
    meta = node.meta
    base = None
    if meta.get("base"):
        base = Conversation.from_dicts([meta["base"]]).messages[0]
    params = None
    if not same_seed and session.params.seed is not None:
        seed = session.params.seed + len(session.tree.siblings(index))
        params = session.params.updated(seed=seed)
        emit(Notice(f"seed {session.params.seed} -> {seed} for this candidate (/retry same repeats "
                    f"seed {meta.get('seed', session.params.seed)})"))
    elif same_seed and not forced and meta.get("seed") is not None:
        params = session.params.updated(seed=meta["seed"])
    session.generate(meta.get("mode", REPLY), meta.get("text", ""), emit, should_stop, at=index,
                     base=base, forced=forced, params=params, count=count)


@COMMANDS.command("retry")
def cmd_retry(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/retry [same] [N]: N new candidates (decoded together on a local model); `same` repeats the
    seed of the turn it retries."""
    words = split_words(arg)
    same = "same" in words
    rest = [w for w in words if w != "same"]
    if len(rest) > 1:
        raise CommandError("usage: /retry [same] [N]")
    index, _ = session.generation_at(-1)
    regenerate(session, index, emit, should_stop, same_seed=same, count=_count(rest[0] if rest else ""))
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
    """next / prev / K among the alternatives of the last message (or message N with --at N);
    next past the last generates."""
    words, found = options(split_words(arg), "at=")
    if not len(session.tree):
        raise CommandError("the conversation is empty")
    index = len(session.tree) - 1
    if "at" in found:
        try:
            index = int(str(found["at"]))
            session.tree.node_at(index)
        except (ValueError, IndexError):
            raise CommandError(f"no message {found['at']}", hint="/messages lists them") from None
    siblings = session.tree.siblings(index)
    current = siblings.index(session.tree.node_at(index).id)
    if len(words) > 2 or (len(words) == 2 and words[0].lower() not in ("next", "n", ">")):
        raise CommandError("usage: /swipe next [N]|prev|K [--at N]")
    word = words[0].lower() if words else "next"
    many = words[1] if len(words) == 2 else ""
    if word in ("next", "n", ">"):
        target = current + 1
        if target == len(siblings):
            if "gen" not in session.tree.node_at(index).meta:
                raise CommandError("this is the last alternative", hint="/swipe prev, or /swipe 1")
            regenerate(session, index, emit, should_stop, same_seed=False, count=_count(many))  # past the last: new ones
            emit(Notice(_candidates(session, index)))
            return
    elif word in ("prev", "p", "<"):
        target = current - 1
        if target < 0:
            raise CommandError("this is the first alternative")
    elif word.isdigit() and 1 <= int(word) <= len(siblings):
        target = int(word) - 1
    elif word.isdigit():
        raise CommandError(f"message {index} has candidates 1..{len(siblings)}")
    else:
        raise CommandError("usage: /swipe next|prev|K [--at N]")
    length = len(session.tree)
    session.trees.change(session.tree.choose(index, target))
    note = f" (the conversation now has {len(session.tree)} messages, was {length})" \
        if len(session.tree) != length else ""
    emit(Notice(_candidates(session, index) + ": " + _preview(session.conversation.messages[index].text)
                + note))


def _preview(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"

