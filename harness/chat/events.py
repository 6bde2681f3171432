"""What a session tells its display: plain values, no terminal code.

The session emits these; the REPL's display renders them (tests read them directly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.generation.records import Generation


@dataclass(frozen=True)
class Notice:
    text: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class TurnStarted:
    writer: str | None
    mode: str
    given: str = ""  # text the turn starts with that the model was given (prefill, impersonate, continue)


@dataclass(frozen=True)
class TokenStreamed:
    text: str
    role: str
    entropy_bits: float
    forced: bool = False  # replayed by /branch (the turn so far and the chosen alternative)


@dataclass(frozen=True)
class TurnFinished:
    generation: Generation
    added: str  # role of the message added to the conversation
    kept: str = ""  # said when the model wrote past its turn: what was kept, and /adopt


@dataclass(frozen=True)
class RawPrompt:
    prompt: str
    pieces: list[tuple[str, str, bool]]  # (piece text, role, is special)


@dataclass(frozen=True)
class EntropyReport:
    rows: dict[str, dict[str, dict[str, Any]]]  # scope -> role -> summary


@dataclass(frozen=True)
class TokenRow:
    piece: str
    role: str
    entropy_bits: float | None
    probability: float | None  # of the token that came
    special: bool


@dataclass(frozen=True)
class TokenView:
    """A generated turn token by token (/tokens)."""

    message: int  # path index of the message the turn produced
    rows: tuple[TokenRow, ...]
    stop_reason: str


@dataclass(frozen=True)
class Alternatives:
    """The top alternatives at one token (/alts)."""

    message: int
    position: int
    came: str
    entropy_bits: float | None
    options: tuple[tuple[int, str, float], ...]  # (rank from 1, piece, probability)
    came_probability: float | None = None  # of the sampled token, in the top or not
    came_in_top: bool = True


@dataclass(frozen=True)
class MessageRow:
    index: int
    role: str
    content: str
    alternative: int  # 1-based number of this message among its siblings
    alternatives: int
    generated: bool
    extras: tuple[str, ...] = ()  # what the message holds besides content: tool calls, reasoning
    interrupted: bool = False  # a generated turn stopped by Ctrl-C


@dataclass(frozen=True)
class MessageList:
    rows: tuple[MessageRow, ...]


@dataclass(frozen=True)
class MessageShown:
    """One message whole (/show N)."""

    row: MessageRow


@dataclass(frozen=True)
class EditRequest:
    """/edit N without text: the REPL asks for the new content (prefilled, or in $EDITOR) and
    sends it back as `/edit N TEXT`."""

    index: int
    content: str
    editor: bool


@dataclass(frozen=True)
class CandidateRow:
    """One candidate of a message, whole."""

    number: int  # 1-based among the message's candidates (what /swipe K takes)
    text: str
    extras: tuple[str, ...]  # tool calls, reasoning: what it holds besides text
    stop_reason: str  # "" when the candidate was not generated in this session
    tokens: int
    mean_entropy_bits: float | None
    seed: int | None
    chosen: bool


@dataclass(frozen=True)
class Candidates:
    """Candidates of message `message` side by side (/retry N, /swipe); with `pick`, the front
    end may offer a key to keep one (harness.chat.dispatch.keep_candidate)."""

    message: int
    role: str
    rows: tuple[CandidateRow, ...]
    of: int  # how many candidates the message has
    pick: bool = False


@dataclass(frozen=True)
class StepRequest:
    """/step: the front end walks a generated turn token by token (arrow keys) and may branch from
    an alternative, sending ``/branch K RANK`` as a typed line (what the model sees goes through
    the one command that changes it)."""

    message: int
    tokens: tuple[TokenRow, ...]
    options: tuple[tuple[tuple[int, str, float], ...], ...]  # per token: (rank from 1, piece, probability)


@dataclass(frozen=True)
class Legend:
    """What the colours and marks mean (/help colours), for these roles."""

    roles: tuple[str, ...]


Event = (Notice | TurnStarted | TokenStreamed | TurnFinished | RawPrompt | EntropyReport | TokenView
         | Alternatives | MessageList | MessageShown | EditRequest | Candidates | Legend | StepRequest)
Emit = Callable[[Event], None]
