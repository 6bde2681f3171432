"""One generated turn as it grows, the same for the local token loop and the server loop.

Both loops hand every token here: it is recorded, its bytes join the decoded text, stop strings
and (under EOS policy ``stop``) the writer's close marker written as text are looked for, the
token is streamed with the role the turn parser gives the text so far, and at the end the text is
settled and every token labelled with its role. What differs between the loops (where logits and
probabilities come from, who samples) stays in the loops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from harness.errors import CommandError
from harness.generation.records import Generation, TokenRecord
from harness.generation.roles import attribute_tokens
from harness.generation.settings import EOS_STOP, TOKEN_ID, SamplingParams, bias_token_id
from harness.generation.stop_text import GrowingText, turn_end_marker
from harness.prompt.attribution import roles_for_spans
from harness.prompt.conversation import TEMPLATE
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser, partial_start, turn_roles


class StopReason(StrEnum):
    """Why a turn ended (the strings are the JSON contract)."""

    EOS = "eos"
    STOP_STRING = "stop_string"
    END_OF_TURN = "end_of_turn"  # the writer's close marker appeared as text (eos stop)
    MAX_TOKENS = "max_tokens"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StreamEvent:
    """One generated token as it arrives: its record and the text it adds."""

    token: TokenRecord
    text: str
    role: str


OnToken = Callable[[StreamEvent], None]


class TokenLookup(Protocol):
    """What bias resolution needs of an engine (a local backend or a server)."""

    def token_id(self, text: str) -> int | None: ...


def resolve_bias(engine: TokenLookup, bias: Mapping[str, float], n_vocab: int = 0) -> dict[int, float]:
    """`text-or-#id -> value` to `id -> value`: "#2" is token id 2, any other key a text that
    must be exactly one token ("2" is the token that reads 2). Ids are checked against `n_vocab`
    when the engine knows its vocabulary (a server may not: 0)."""
    out: dict[int, float] = {}
    for key, value in bias.items():
        text = str(key)
        token = bias_token_id(text)
        if token is None:
            token = engine.token_id(text)
            if token is None:
                raise CommandError(f"logit bias: the text {text!r} is not exactly one token of this model",
                                   hint=f"bias one token's text, or an id as {TOKEN_ID}N")
        if n_vocab > 0 and token >= n_vocab:
            raise CommandError(f"logit bias: there is no token {TOKEN_ID}{token} (the vocabulary has {n_vocab})")
        out[token] = float(value)
    return out


def eog_texts(piece: Callable[[int], bytes], eog_ids: Iterable[int]) -> list[str]:
    return [piece(i).decode("utf-8", "replace") for i in sorted(eog_ids)]


class GeneratedTurn:
    """Records, text, stops and roles of one turn being generated after `plan`."""

    def __init__(self, plan: PromptPlan, markers: TurnMarkers, params: SamplingParams,
                 parser: TurnParser, on_token: OnToken | None = None):
        self.plan, self.params, self.parser, self.on_token = plan, params, parser, on_token
        self.turn_end = turn_end_marker(markers, plan.writer) if params.eos == EOS_STOP else None
        self.text = GrowingText((*params.stop, *([self.turn_end] if self.turn_end else [])))
        self.tokens: list[TokenRecord] = []
        self._start = parser.start_role(plan.writer, plan.mode)
        self._roles = parser.tracker(self._start, plan.opened)  # updated per token, linear in the text
        self._last_role: tuple[str, str] | None = None  # (text, role at its end)
        self._unstreamed: list[tuple[TokenRecord, int]] = []  # (token, where its text starts)

    def _role_at_end(self, text: str) -> str:
        if self._last_role is None or (self._last_role[0] is not text and self._last_role[0] != text):
            self._last_role = (text, self._roles.role(text))
        return self._last_role[1]

    def add(self, record: TokenRecord, *, look: bool = True, silent: bool = False) -> StopReason | None:
        """Record a token, add its bytes to the text (none when `silent`: an end-of-turn token
        the user forced), stream it; the stop reason if its text ends the turn. `look` False:
        no stop is looked for (tokens the user chose)."""
        self.tokens.append(record)
        self._unstreamed.append((record, len(self.text.text)))
        _, hit = ("", None) if silent else self.text.add(record.raw, look=look)
        self._stream(final=False)
        if hit is None and look and self.switched():
            return StopReason.END_OF_TURN
        if hit is None:
            return None
        if hit == self.turn_end and hit not in self.params.stop:
            return StopReason.END_OF_TURN
        return StopReason.STOP_STRING

    def switched(self) -> bool:
        """Under EOS policy stop: the text has opened another role's turn (a template whose
        close is whitespace, like raw's blank line, ends a turn only by the next one opening)."""
        if self.params.eos != EOS_STOP or self.plan.writer is None:
            return False
        role = self._role_at_end(self.text.text)
        return role != TEMPLATE and role not in turn_roles(self.plan.writer)

    def _stream(self, *, final: bool) -> None:
        """Hand the stream the tokens whose text and role more text cannot change (all of them
        when `final`): text that may still become a turn marker or a stop string waits, so the
        stream shows what the turn parser finally decides and exactly the text kept."""
        if self.on_token is None or not self._unstreamed:
            return
        text = self.text.text
        full = self.plan.opened + text
        ready = len(text) if final else min(self.parser.settled(full) - len(self.plan.opened),
                                            partial_start(text, self.text.stops))
        starts = [start for _, start in self._unstreamed] + [len(text)]
        count = len(self._unstreamed) if final else sum(1 for end in starts[1:] if end <= ready)
        if count == 0:
            return
        offset = len(self.plan.opened)
        spans = self.parser.parse(full, self._start)
        pieces = [(min(starts[i], len(text)), min(starts[i + 1], len(text))) for i in range(count)]
        roles = roles_for_spans([(a + offset, b + offset) for a, b in pieces], spans)
        released, self._unstreamed = self._unstreamed[:count], self._unstreamed[count:]
        for (record, _), (a, b), role in zip(released, pieces, roles, strict=True):
            self.on_token(StreamEvent(record, text[a:b], role))

    def end_with(self, record: TokenRecord) -> None:
        """Record the end-of-generation token that ended the turn: last in `tokens`, no text."""
        self.tokens.append(record)
        self._unstreamed.append((record, len(self.text.text)))

    def finish(self, result: Generation, reason: StopReason) -> Generation:
        """Settle the text (cut at a stop, else flushed), stream what was held back, and label
        every token with its role."""
        cut = reason in (StopReason.STOP_STRING, StopReason.END_OF_TURN)
        result.text = self.text.text if cut else self.text.finish()
        self._stream(final=True)
        result.stop_reason = reason
        result.tokens = attribute_tokens(self.parser, self.plan, self.tokens)
        return result
