"""The token inspector: /tokens, /alts, /branch, and the prompt views /raw and /entropy.

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
    Notice,
    RawPrompt,
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
    inspected = session.transcript.inspected
    if inspected is not None and inspected < len(session.tree):
        try:
            return session.generation_at(inspected)
        except CommandError:
            pass
    return session.generation_at(-1)


@COMMANDS.command("tokens")
def cmd_tokens(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if len(words) > 1 or words and not words[0].lstrip("-").isdigit():
        raise CommandError("usage: /tokens [N]", hint="N is a message number from /messages")
    index, gen = session.generation_at(int(words[0]) if words else -1)
    session.transcript.inspect(index)
    special = session.bench.engine.is_special
    rows = tuple(TokenRow(shown_piece(t.piece, t.raw or session.bench.engine.piece(t.id)), t.role, t.stats.entropy_bits if t.stats else None,
                          2.0 ** -t.stats.surprisal_bits if t.stats else None, special(t.id))
                 for t in gen.tokens)
    emit(TokenView(index, rows, gen.stop_reason))


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
    options = tuple((rank + 1, shown_piece("", engine.piece(i)), p)
                    for rank, (i, p) in enumerate(zip(stats.top_ids, stats.top_probs, strict=True)))
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
    later = len(session.tree) - index - 1
    regenerate(session, index, emit, should_stop, forced=forced)
    session.transcript.inspect(index)
    if later:
        emit(Notice(f"the branch is a new candidate of message {index}; the {later} message(s) after "
                    f"it stay with the old one (/swipe prev --at {index} goes back)", "warning"))


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
