"""The token inspector: /tokens, /step, /alts, /branch, and the prompt views /raw and /entropy.

/tokens [N] picks the turn that message N came from (default: the last generated one); /alts
and /branch act on that turn. A branch re-asks the turn's prompt with its first K tokens plus a
chosen alternative forced, and lets the model go on; the result is a new alternative of the
message, so the conversation keeps both branches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.chat.events import (
    Alternatives,
    Emit,
    EntropyReport,
    RawPrompt,
    StepRequest,
    TokenRow,
    TokenView,
)
from harness.chat.registry import CommandTable
from harness.chat.slash import split_words
from harness.errors import CommandError
from harness.generation.records import Generation, role_summaries
from harness.prompt.modes import IMPERSONATE, REPLY

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


def _inspected(session: Session) -> tuple[int, Generation]:
    """The turn /alts and /branch act on: the message /tokens N chose, wherever it now stands
    (an error when it left the conversation), else the last generated one."""
    inspected = session.transcript.inspected
    if inspected is None:
        return inspectable(session, -1)
    path = [node.id for node in session.tree.path()]
    if inspected not in path:
        raise CommandError("the message /tokens chose is no longer in the conversation (deleted, or "
                           "another candidate was chosen)", hint="/tokens N inspects another")
    return inspectable(session, path.index(inspected))


def inspectable(session: Session, index: int) -> tuple[int, Generation]:
    """(path index, generation) of generated message `index` whose text is still what the turn
    wrote: an edited message's tokens would answer for text it no longer holds."""
    index, gen = session.generation_at(index)
    if session.tree.node_at(index).meta.get("edited"):
        raise CommandError(f"message {index} was edited after it was generated; its tokens are those "
                           "of the text before the edit", hint="/undo brings that text back; /retry generates anew")
    return index, gen


@COMMANDS.command("tokens")
def cmd_tokens(session: Session, arg: str, emit: Emit, should_stop) -> None:
    index, gen = _inspect(session, arg, "/tokens [N]")
    emit(TokenView(index, _rows(session, gen), gen.stop_reason))


@COMMANDS.command("step")
def cmd_step(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/step [N]: message N's turn (default: the last) for the arrow keys; Enter on an
    alternative comes back as /branch K RANK."""
    index, gen = _inspect(session, arg, "/step [N]")
    if not gen.tokens:
        raise CommandError(f"message {index} came from a turn without tokens")
    emit(StepRequest(index, _rows(session, gen), tuple(_options(session, t.stats) for t in gen.tokens)))


def _inspect(session: Session, arg: str, usage: str) -> tuple[int, Generation]:
    """The turn message N (or the last generated one) came from, now the inspected one."""
    words = split_words(arg)
    if len(words) > 1 or words and not words[0].lstrip("-").isdigit():
        raise CommandError(f"usage: {usage}", hint="N is a message number from /messages")
    index, gen = inspectable(session, int(words[0]) if words else -1)
    session.transcript.inspect(session.tree.node_at(index).id)
    return index, gen


def _rows(session: Session, gen: Generation) -> tuple[TokenRow, ...]:
    engine = session.bench.engine
    return tuple(TokenRow(shown_piece(t.piece, t.raw or engine.piece(t.id)), t.role,
                          t.stats.entropy_bits if t.stats else None,
                          2.0 ** -t.stats.surprisal_bits if t.stats else None, engine.is_special(t.id))
                 for t in gen.tokens)


def _options(session: Session, stats) -> tuple[tuple[int, str, float], ...]:
    """The top alternatives at a token: (rank from 1, piece, probability)."""
    if stats is None:
        return ()
    engine = session.bench.engine
    return tuple((rank + 1, shown_piece("", engine.piece(i)), p)
                 for rank, (i, p) in enumerate(zip(stats.top_ids, stats.top_probs, strict=True)))


def shown_piece(piece: str, raw: bytes) -> str:
    """A token's text, or its bytes as \\xNN when they are not UTF-8 on their own (a character
    split over tokens)."""
    try:
        return raw.decode("utf-8") if raw else piece
    except UnicodeDecodeError:
        return "".join(f"\\x{b:02x}" for b in raw)


def _position(gen: Generation, word: str, usage: str) -> int:
    try:
        k = int(word)
    except ValueError:
        raise CommandError(f"usage: {usage}", hint="K is a token number shown by /tokens") from None
    if not 0 <= k < len(gen.tokens):
        raise CommandError(f"no token {k}", hint=f"this turn has tokens 0..{len(gen.tokens) - 1}")
    return k


@COMMANDS.command("alts")
def cmd_alts(session: Session, arg: str, emit: Emit, should_stop) -> None:
    index, gen = _inspected(session)
    words = split_words(arg)
    k = _position(gen, words[0] if len(words) == 1 else "", "/alts K")
    token = gen.tokens[k]
    stats = token.stats
    if stats is None:
        raise CommandError(f"token {k} has no statistics")
    engine = session.bench.engine
    options = _options(session, stats)
    came = 2.0 ** -stats.surprisal_bits if stats.surprisal_bits is not None else None
    emit(Alternatives(index, k, shown_piece(token.piece, token.raw or engine.piece(token.id)),
                      stats.entropy_bits, options, came,
                      came_in_top=token.id in stats.top_ids))


def resolve_alternative(session: Session, gen: Generation, k: int, alt: str) -> int:
    """A token id from a rank among /alts (1 = most probable) or a token's text."""
    stats = gen.tokens[k].stats
    top = list(stats.top_ids) if stats else []
    if alt.isdigit() and 1 <= int(alt) <= len(top):
        return top[int(alt) - 1]
    text = alt
    for i in top:
        if session.bench.piece_text(i) == text:
            return i
    backend = session.bench.engine
    token = backend.token_id(text)
    if token is None:
        ids = backend.tokenize(text)
        token = ids[0] if len(ids) == 1 else None
    if token is None:
        raise CommandError(f"'{text}' is not one token of this model",
                           hint="give a rank from /alts, or a text that is exactly one token (quote spaces)")
    return token


@COMMANDS.command("branch")
def cmd_branch(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.chat.commands.turns import regenerate

    words = split_words(arg)
    index, gen = _inspected(session)
    if len(words) != 2:
        raise CommandError("usage: /branch K ALT", hint="ALT: a rank from /alts K or a token text (quote spaces)")
    k = _position(gen, words[0], "/branch K ALT")
    token = resolve_alternative(session, gen, k, words[1])
    forced = [t.id for t in gen.tokens[:k]] + [token]
    regenerate(session, index, emit, should_stop, forced=forced)  # says where later messages stay
    session.transcript.inspect(session.tree.node_at(index).id)


@COMMANDS.command("raw")
def cmd_raw(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if words not in ([], ["as-is"], ["impersonate"]):
        raise CommandError("usage: /raw [as-is|impersonate]")
    mode = IMPERSONATE if words == ["impersonate"] else ("as-is" if words == ["as-is"] else REPLY)
    plan = session.bench.plan(session.conversation, mode)
    records = session.bench.prompt_records(plan)  # as generation tokenizes it (literal content too)
    backend = session.bench.engine
    emit(RawPrompt(plan.prompt, [(r.piece, r.role, backend.is_special(r.id)) for r in records]))


@COMMANDS.command("entropy")
def cmd_entropy(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not len(session.transcript):
        raise CommandError("no turn generated yet")
    last = session.transcript[-1]
    emit(EntropyReport({"last turn (generated)": role_summaries(last.tokens),
                        "last turn (prompt)": role_summaries(last.prompt_tokens),
                        "session (generated)": session.transcript.roles()}))
