"""What the Python API hands back: a generated turn and a scored conversation, each able to say
itself as the CLI's JSON (``generate --json``, ``score --json``) even after its model is closed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import DecodePath
from harness.generation.records import Generation, TokenRecord, role_summaries, score_json
from harness.generation.request import TurnResult
from harness.generation.turn import StopReason
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import Message


def token_names(bench: BaseWorkbench, tokens: Sequence[TokenRecord]) -> dict[int, str]:
    """The text of every token a result's JSON names (its own and its alternatives), read while
    the model is open: a result serialises after the model is closed."""
    ids = {t.id for t in tokens} | {i for t in tokens if t.stats for i in t.stats.top_ids}
    return {i: bench.piece_text(i) for i in ids}


@dataclass
class GenerationResult:
    """One generated turn: ``text``, ``stop_reason``, ``tokens`` (each with ``role``,
    ``entropy_bits``, ``surprisal_bits``, ``stats``), the prompt's tokens and any warnings."""

    turn: TurnResult = field(repr=False)
    _names: dict[int, str] = field(repr=False)

    @property
    def generation(self) -> Generation:
        return self.turn.generation

    @property
    def text(self) -> str:
        return self.turn.generation.text

    @property
    def stop_reason(self) -> StopReason:
        return StopReason(self.turn.generation.stop_reason)

    @property
    def tokens(self) -> list[TokenRecord]:
        return self.turn.generation.tokens

    @property
    def prompt_tokens(self) -> list[TokenRecord]:
        return self.turn.generation.prompt_tokens

    @property
    def seed(self) -> int | None:
        """The seed this candidate ran with (candidates of one call: seed, seed + 1, ...)."""
        return self.turn.params.seed

    @property
    def warnings(self) -> list[str]:
        return self.turn.prepared.warnings

    @property
    def dropped(self) -> int:
        """How many of the oldest messages were left out to fit the context."""
        return self.turn.prepared.dropped

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        return role_summaries(self.tokens)

    @property
    def message(self) -> Message:
        """The turn as the message to append to the conversation: it re-renders as the model
        wrote it whenever :attr:`round_trip` is true."""
        return self.turn.writer_message()

    @property
    def round_trip(self) -> bool | None:
        """Whether the conversation plus :attr:`message`, rendered, reproduces the prompt and the
        text the model wrote (None: nothing to check, e.g. a server's turn with no template)."""
        return self.turn.generation.round_trip

    def to_dict(self) -> dict[str, Any]:
        """What ``harness generate --json`` prints for the same call."""
        return self.turn.to_dict(self._names.__getitem__)


@dataclass
class ScoreResult:
    """Teacher-forced statistics of a conversation as rendered: ``prompt``, ``tokens``, ``roles``."""

    prompt: str
    tokens: list[TokenRecord]
    warnings: list[str]
    _names: dict[int, str] = field(repr=False)
    decode_path: DecodePath | None = None  # the engine's, with its invariance verdict (None: a server)

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        return role_summaries(self.tokens)

    def to_dict(self) -> dict[str, Any]:
        """What ``harness score --json`` prints for the same conversation."""
        path = self.decode_path.to_dict() if self.decode_path is not None else None
        return score_json(self.prompt, self.tokens, self._names.__getitem__) | {
            "warnings": list(self.warnings), "decode_path": path}
