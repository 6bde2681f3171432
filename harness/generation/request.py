"""One turn, assembled in one place: the front door of generation.

:func:`run_turn` takes a :class:`TurnRequest` (conversation, mode, text, settings, overflow
policy) and does what every caller needs, in this order: fit the conversation to the context
(dropping the oldest messages when the policy allows), find message content that becomes control
tokens, generate (one candidate streamed, or several decoded together), and give each candidate
as a :class:`TurnResult` that knows the writer's own turn and serialises itself. The CLI's
``generate``, the Python API, the REPL's session and experiment cells all run their turns here;
each only shows the notices its own way (stderr, a warnings list, events, nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import DecodePath
from harness.errors import CommandError
from harness.generation.evaluation import FieldInjection, Injection
from harness.generation.records import Generation, generation_json
from harness.generation.settings import OVERFLOW_ERROR, SamplingParams
from harness.generation.turn import OnToken, StopReason
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import ASSISTANT, Conversation, Message
from harness.prompt.modes import REPLY, PromptPlan
from harness.prompt.turns import TurnParser, writer_turn


@dataclass(frozen=True)
class TurnRequest:
    """What a turn is asked with. `forced`: token ids the turn starts with (a branch at a
    token), for one candidate on a local model."""

    conversation: Conversation
    mode: str = REPLY
    text: str = ""
    params: SamplingParams = field(default_factory=SamplingParams)
    overflow: str = OVERFLOW_ERROR
    forced: tuple[int, ...] = ()

    def candidate_params(self, n: int) -> list[SamplingParams]:
        """The settings of `n` candidates: seeds seed, seed + 1, ... when a seed is set."""
        if n < 1:
            raise CommandError(f"n must be at least 1, got {n}", field="n")
        seed = self.params.seed
        return [self.params if seed is None or i == 0 else self.params.updated(seed=seed + i)
                for i in range(n)]


@dataclass(frozen=True)
class PreparedTurn:
    """A request fitted to the context: the prompt plan, how many of the oldest messages it
    leaves out, and the message text that becomes control tokens."""

    plan: PromptPlan
    dropped: int
    injections: tuple[Injection | FieldInjection, ...]
    n_ctx: int
    decode_path: DecodePath | None = None  # the engine's, with its invariance verdict (None: a server)
    engine_warnings: tuple[str, ...] = ()  # what the engine said of itself (a server's processed logprobs)

    @property
    def warnings(self) -> list[str]:
        return [*self.engine_warnings, *(i.describe() for i in self.injections)]

    def decode_notice(self) -> str | None:
        """One line when the engine's decode path is not batch-invariant."""
        return self.decode_path.notice() if self.decode_path is not None else None

    def dropped_notice(self) -> str | None:
        if not self.dropped:
            return None
        return (f"context full: the {self.dropped} oldest message(s) are left out of this prompt "
                f"(n_ctx {self.n_ctx}); the conversation keeps them")


@dataclass(frozen=True)
class TurnResult:
    """One candidate of a turn: the generation, the settings it ran with (a candidate's seed
    moves on), and the prepared prompt it came from."""

    prepared: PreparedTurn
    generation: Generation
    params: SamplingParams
    parser: TurnParser = field(repr=False, compare=False)

    @property
    def interrupted(self) -> bool:
        return self.generation.stop_reason == StopReason.INTERRUPTED

    @property
    def writer(self) -> str:
        return self.prepared.plan.writer or ASSISTANT

    def writer_message(self) -> Message:
        """The writer's own turn as it goes into the conversation: the text up to where the
        model closed it (a continued message's text included), without the scaffolding the
        template writes itself, so that it re-renders as the model wrote it
        (harness.prompt.roundtrip); what came past it is not."""
        plan, gen = self.prepared.plan, self.generation
        if gen.message is not None:
            return gen.message
        full = plan.opened + gen.text
        spans = self.parser.parse(full, self.parser.start_role(plan.writer, plan.mode))
        content, went_past = writer_turn(spans, full, plan.writer)
        return Message(self.writer, content.rstrip() if went_past else content)

    def to_dict(self, name_of: Callable[[int], str]) -> dict[str, Any]:
        """The ``generate --json`` contract (every field the generation carries) with the
        prompt's warnings."""
        path = self.prepared.decode_path
        return generation_json(self.generation, name_of) | {
            "warnings": self.prepared.warnings, "decode_path": path.to_dict() if path is not None else None}


def prepare_turn(bench: BaseWorkbench, request: TurnRequest) -> PreparedTurn:
    """Fit the request's conversation to the context and find its injections."""
    plan, dropped = bench.fit_conversation(request.conversation, request.mode, request.text, request.overflow)
    return PreparedTurn(plan, dropped, tuple(bench.injections(plan)), bench.info.n_ctx, bench.decode_path,
                        tuple(bench.warnings))


def run_turn(bench: BaseWorkbench, request: TurnRequest, *, n: int = 1,
             candidates: Sequence[SamplingParams] | None = None,
             on_prepared: Callable[[PreparedTurn], None] | None = None,
             on_token: OnToken | None = None,
             should_stop: Callable[[], bool] | None = None) -> list[TurnResult]:
    """Run one turn: `n` candidates after the same prompt (n > 1: decoded together, not
    streamed), or one per entry of `candidates` (each its own settings: experiment cells).
    `on_prepared` hears the fitted prompt before anything is generated (to show its notices);
    `on_token` streams a single candidate. Fewer results than asked for when a stop cut the
    candidates short (the last one interrupted)."""
    params = list(candidates) if candidates is not None else request.candidate_params(n)
    if not params:
        raise CommandError("a turn needs at least one candidate", field="candidates")
    if request.forced and len(params) > 1:
        raise CommandError("a turn with forced tokens has one candidate")
    prepared = prepare_turn(bench, request)
    if on_prepared is not None:
        on_prepared(prepared)
    if len(params) == 1:
        generations = [bench.generate(prepared.plan, params[0], on_token=on_token, should_stop=should_stop,
                                      forced=request.forced)]
    else:
        generations = bench.generate_many(prepared.plan, params, should_stop=should_stop)
    parser = bench.turn_parser()
    return [TurnResult(prepared, gen, used, parser) for gen, used in zip(generations, params, strict=False)]


def pending_notice(bench: BaseWorkbench, prepared: PreparedTurn, threshold: int) -> str | None:
    """A line to show before a long prompt is evaluated (None: shorter than `threshold` new tokens)."""
    pending = bench.uncached_prompt_tokens(prepared.plan)
    return f"evaluating {pending} prompt tokens ..." if pending >= threshold else None
