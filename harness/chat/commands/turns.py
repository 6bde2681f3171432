"""Commands that generate turns or choose among them: the reply modes, /adopt, /retry and
/swipe.

A retry under a fixed seed derives a new seed (shown) so each candidate differs; ``/retry same``
repeats the turn's own seed. A swipe acts on the last message, or on message N with ``--at N``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.chat.events import CandidateRow, Candidates, Emit, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import free_text, options, split_words
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
    text = given_text(arg, emit)
    session.generate(IMPERSONATE, text, emit, should_stop)


@COMMANDS.command("prefill")
def cmd_prefill(session: Session, arg: str, emit: Emit, should_stop) -> None:
    text = given_text(arg, emit)
    if not text:
        raise CommandError("usage: /prefill TEXT", hint='quote it to keep leading blanks or use escapes: "<think>\\n"')
    session.generate(PREFILL, text, emit, should_stop)


def given_text(arg: str, emit: Emit) -> str:
    """The text a turn is begun with, as typed (or unquoted); a warning when it holds a
    backslash escape that was taken as typed."""
    _, text, hint = free_text(arg, 0)
    if hint:
        emit(Notice(hint, "warning"))
    return text


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
               same_seed: bool = True, count: int = 1) -> list[int]:
    """New alternatives (`count`, decoded together on a local model) of generated message `index`,
    asked for the way it was; their numbers among the message's candidates. Under a fixed seed
    and not `same_seed`, the seed moves on by the number of candidates so far (shown). When
    messages followed it, says that they stay with the old candidate."""
    node = session.tree.node_at(index)
    meta = node.meta
    before = session.tree.siblings(index)
    later = len(session.tree) - index - 1
    base = None
    if meta.get("base"):
        base = Conversation.from_dicts([meta["base"]]).messages[0]
    params = None
    if not same_seed and session.params.seed is not None:
        seed = session.params.seed + len(before)
        params = session.params.updated(seed=seed)
        which = f"{seed} for this candidate" if count == 1 else f"{seed}..{seed + count - 1} for these {count} candidates"
        emit(Notice(f"seed {session.params.seed} -> {which} (/retry same repeats "
                    f"seed {meta.get('seed', session.params.seed)})"))
    elif same_seed and not forced and meta.get("seed") is not None:
        params = session.params.updated(seed=meta["seed"])
    session.generate(meta.get("mode", REPLY), meta.get("text", ""), emit, should_stop, at=index,
                     base=base, forced=forced, params=params, count=count)
    siblings = session.tree.siblings(index)
    new = [k + 1 for k, node_id in enumerate(siblings) if node_id not in before]
    if later and new:
        after = "the message after it stays" if later == 1 else f"the {later} messages after it stay"
        emit(Notice(f"message {index} is now candidate {new[-1]} of {len(siblings)}; {after} "
                    f"with candidate {before.index(node.id) + 1} "
                    f"(/swipe {before.index(node.id) + 1} --at {index} goes back to them)", "warning"))
    return new


@COMMANDS.command("retry")
def cmd_retry(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/retry [same] [N]: N new candidates (decoded together on a local model, then shown side by
    side with a key to keep one); `same` repeats the seed of the turn it retries. One /undo takes
    the whole retry back."""
    words = split_words(arg)
    same = "same" in words
    rest = [w for w in words if w != "same"]
    if len(rest) > 1:
        raise CommandError("usage: /retry [same] [N]")
    count = _count(rest[0] if rest else "")
    index, _ = session.generation_at(-1)
    new = regenerate(session, index, emit, should_stop, same_seed=same, count=count)
    if count > 1 and new:
        emit(candidates_view(session, index, new, pick=True))
    else:
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


def candidates_view(session: Session, index: int, numbers: Sequence[int], *, pick: bool = False) -> Candidates:
    """Candidates `numbers` (1-based) of message `index`, whole, with their statistics."""
    from harness.chat.commands.edit import message_extras

    siblings = session.tree.siblings(index)
    chosen = session.tree.node_at(index).id
    rows = []
    for number in numbers:
        node = session.tree.nodes[siblings[number - 1]]
        assert node.message is not None
        gen_index = node.meta.get("gen")
        gen = session.transcript[gen_index] if isinstance(gen_index, int) and 0 <= gen_index < len(session.transcript) \
            else None
        entropies = [t.stats.entropy_bits for t in gen.tokens if t.stats is not None] if gen else []
        rows.append(CandidateRow(number, node.message.text, message_extras(node.message),
                                 gen.stop_reason if gen else "", len(gen.tokens) if gen else 0,
                                 sum(entropies) / len(entropies) if entropies else None,
                                 node.meta.get("seed"), node.id == chosen))
    role = session.tree.node_at(index).message.role  # type: ignore[union-attr]
    return Candidates(index, role, tuple(rows), len(siblings), pick=pick and len(rows) > 1)


@COMMANDS.command("swipe")
def cmd_swipe(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Bare: every candidate of the last message (or message N with --at N) side by side, with a
    key to keep one. next / prev / K chooses one (shown whole); next past the last generates."""
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
    if not words:
        emit(candidates_view(session, index, range(1, len(siblings) + 1), pick=True))
        return
    if len(words) > 2 or (len(words) == 2 and words[0].lower() not in ("next", "n", ">")):
        raise CommandError("usage: /swipe [next [N]|prev|K] [--at N]")
    word = words[0].lower()
    many = words[1] if len(words) == 2 else ""
    if word in ("next", "n", ">"):
        target = current + 1
        if target == len(siblings):
            if "gen" not in session.tree.node_at(index).meta:
                raise CommandError("this is the last alternative", hint="/swipe prev, or /swipe 1")
            count = _count(many)
            new = regenerate(session, index, emit, should_stop, same_seed=False, count=count)  # past the last: new ones
            if count > 1 and new:
                emit(candidates_view(session, index, new, pick=True))
            else:
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
        raise CommandError("usage: /swipe [next [N]|prev|K] [--at N]")
    choose(session, index, target, emit)
    emit(candidates_view(session, index, [target + 1]))


def choose(session: Session, index: int, which: int, emit: Emit, *, amend: bool = False) -> None:
    """Make candidate `which` (0-based) of message `index` the chosen one; say when the length of
    the conversation changes with it. `amend`: as part of the change just made (a key pressed
    after /retry N), not an undo step of its own."""
    length = len(session.tree)
    tree = session.tree.choose(index, which)
    if amend:
        session.trees.amend(tree)
    else:
        session.trees.change(tree)
    emit(Notice(_candidates(session, index) + (
        f" (the conversation now has {len(session.tree)} messages, was {length})" if len(session.tree) != length else "")))
