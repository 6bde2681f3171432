"""A model with a chosen template: plan, generate and score conversations.

A workbench ties an engine (a local backend, or a server: :mod:`harness.generation.remote_workbench`)
to a template, the template's derived turn markers and the template variables
(``bos_token``/``eos_token`` from the model, overridable). :class:`BaseWorkbench` holds all that
the two share; :class:`Workbench` adds the prompt evaluator whose KV cache is reused from one call
to the next, and the local token loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.backends.base import DecodePath, ModelInfo, MultiSequenceBackend
from harness.errors import CommandError, ContextOverflowError, MessagesError
from harness.generation.batch import generate_batch, sequence_cells
from harness.generation.evaluation import (
    FieldInjection,
    Injection,
    PromptEvaluator,
    encode_prompt,
    find_field_injections,
    find_injections,
    message_fields,
    workspace_for,
)
from harness.generation.loop import generate
from harness.generation.records import Generation, TokenRecord
from harness.generation.roles import turn_parser
from harness.generation.settings import OVERFLOW_ERROR, OVERFLOW_TRUNCATE, SamplingParams
from harness.generation.turn import OnToken, eog_texts
from harness.prompt.blocks import derive_blocks
from harness.prompt.conversation import REASONING, SYSTEM, Conversation
from harness.prompt.markers import derive_markers
from harness.prompt.modes import AS_IS, REPLY, PromptPlan, plan_prompt
from harness.prompt.roundtrip import turn_message
from harness.prompt.templates import ChatTemplate
from harness.prompt.turns import TurnParser, writer_turn


def model_variables(info: ModelInfo) -> dict[str, Any]:
    return {"bos_token": info.bos_text, "eos_token": info.eos_text}


def fit_plan(conversation: Conversation, plan_of: Callable[[Conversation], PromptPlan],
             tokens_of: Callable[[PromptPlan], int], n_ctx: int,
             policy: str = OVERFLOW_ERROR) -> tuple[PromptPlan, int]:
    """Plan `conversation`, dropping its oldest non-system messages while the prompt (plus one
    generated token) does not fit `n_ctx` and `policy` allows; returns (plan, dropped)."""
    dropped = 0
    while True:
        plan = plan_of(conversation)
        n = tokens_of(plan)
        if n + 1 <= n_ctx:
            return plan, dropped
        if policy != OVERFLOW_TRUNCATE:
            raise ContextOverflowError(
                f"the prompt is {n} tokens and the context holds {n_ctx}",
                hint="raise n_ctx, shorten the conversation, or set context_overflow: truncate-oldest")
        oldest = next((i for i, m in enumerate(conversation) if m.role != SYSTEM), None)
        if oldest is None or oldest >= len(conversation) - 1:
            raise ContextOverflowError(f"even the last message alone does not fit the context of {n_ctx}",
                                       hint="raise n_ctx or shorten the message")
        conversation = Conversation(conversation.messages[:oldest] + conversation.messages[oldest + 1:])
        dropped += 1


class BaseWorkbench:
    """What a workbench is, whatever runs the model: template, markers, variables, planning and
    fitting the context. Subclasses give the engine, count tokens and generate.

    The template, its markers and blocks and the variables change together, only through
    :meth:`set_template` and :meth:`set_variables` (markers and blocks are derived again from
    both); literal content through :meth:`set_literal_content`."""

    engine: Any  # a Backend or a RemoteEngine: tokenize, token_id, piece, is_special, info, close
    is_remote = False  # a server tokenizes and samples (no literal content, no forced tokens)

    def __init__(self, engine: Any, template: ChatTemplate, variables: Mapping[str, Any] | None,
                 *, literal_content: bool = False):
        self.engine = engine
        self._overrides = dict(variables or {})
        self._derive(template, self._overrides)
        self._literal_content = False
        self.set_literal_content(literal_content)

    def _derive(self, template: ChatTemplate, overrides: Mapping[str, Any]) -> None:
        """Template, variables, markers and blocks as one change (raises before anything changes)."""
        variables = {**model_variables(self.info), **overrides}
        markers = derive_markers(template, variables)
        blocks = derive_blocks(template, variables, markers.generation_prompt)
        self.template, self.markers, self.blocks = template, markers, blocks
        self._overrides = dict(overrides)

    @property
    def overrides(self) -> dict[str, Any]:
        """The template variables set over the model's own (a copy)."""
        return dict(self._overrides)

    @property
    def literal_content(self) -> bool:
        """Message content is tokenized as plain text (control-token strings stay text)."""
        return self._literal_content

    @property
    def backend_url(self) -> str | None:
        """The server's URL (None: a model in this process)."""
        return None

    @property
    def info(self) -> ModelInfo:
        return self.engine.info

    @property
    def eog_ids(self) -> frozenset[int]:
        return self.info.eog_ids

    @property
    def decode_path(self) -> DecodePath | None:
        """How the engine computes logits, with its invariance verdict (None: a server, whose
        decode path harness neither controls nor measures)."""
        return None

    @property
    def variables(self) -> dict[str, Any]:
        return {**model_variables(self.info), **self._overrides}

    @property
    def model_label(self) -> str:
        """How errors name the model (a template named gguf is its embedded one)."""
        return self.info.name

    def set_template(self, template: ChatTemplate) -> None:
        self._derive(template, self._overrides)

    def set_variables(self, overrides: Mapping[str, Any]) -> None:
        """Replace the template variables set over the model's own; markers and blocks follow."""
        self._derive(self.template, overrides)

    def set_literal_content(self, on: bool) -> None:
        if on and self.is_remote:
            raise CommandError("a server tokenizes the whole prompt: literal content needs a local model",
                               field="literal_content")
        self._literal_content = bool(on)

    def turn_parser(self) -> TurnParser:
        """The parser of generated text under this template (the model's end-of-generation
        texts count as closes)."""
        return turn_parser(self.markers, eog_texts(self.engine.piece, self.eog_ids), self.blocks)

    def plan(self, conversation: Conversation, mode: str = REPLY, text: str = "") -> PromptPlan:
        """The prompt plan; with literal content, a role or field holding control-token text is
        refused (the template prints it outside content, where literal tokenization cannot reach)."""
        plan = plan_prompt(conversation, self.template, mode, text=text, variables=self.variables)
        plan = replace(plan, fields=message_fields(conversation))
        if self.literal_content:
            found = find_field_injections(self.engine, plan.fields)
            if found:
                raise MessagesError(found[0].describe(), hint="literal content covers message "
                                    "content only; remove the control-token text from the field")
        return plan

    def count_tokens(self, plan: PromptPlan) -> int:
        raise NotImplementedError

    def fit_conversation(self, conversation: Conversation, mode: str = REPLY, text: str = "",
                         policy: str = OVERFLOW_ERROR) -> tuple[PromptPlan, int]:
        """The prompt plan, after dropping the oldest non-system messages if `policy` is
        truncate-oldest and the prompt does not fit the context; returns (plan, dropped). Without
        a known context length (a server that does not say) nothing is dropped."""
        n_ctx = self.info.n_ctx
        if n_ctx <= 0:
            return self.plan(conversation, mode, text), 0
        return fit_plan(conversation, lambda c: self.plan(c, mode, text), self.count_tokens, n_ctx, policy)

    def generate(self, plan: PromptPlan, params: SamplingParams, *, on_token: OnToken | None = None,
                 should_stop: Callable[[], bool] | None = None, forced: Sequence[int] = ()) -> Generation:
        raise NotImplementedError

    def generate_many(self, plan: PromptPlan, params: Sequence[SamplingParams], *,
                      on_token: Sequence[OnToken | None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list[Generation]:
        """One generation per entry of `params` after the same plan. Here one after another
        (a server); a local workbench decodes them together. Stops early (fewer results, the
        last one interrupted) when `should_stop` ends a generation."""
        out: list[Generation] = []
        for i, p in enumerate(params):
            gen = self.generate(plan, p, on_token=on_token[i] if on_token else None, should_stop=should_stop)
            out.append(gen)
            if gen.stop_reason == "interrupted":
                break
        return out

    def score(self, conversation: Conversation) -> tuple[PromptPlan, list[TokenRecord]]:
        raise NotImplementedError

    def with_message(self, plan: PromptPlan, gen: Generation) -> Generation:
        """`gen` with its writer's turn as a message (harness.prompt.roundtrip): what a
        conversation stores so that the next prompt shows what the model wrote."""
        if plan.writer is None or plan.before is None:
            return gen
        parser = self.turn_parser()
        full = plan.opened + gen.text
        start = parser.start_role(plan.writer, plan.mode)
        turn, went_past = writer_turn(parser.parse(full, start), full, plan.writer)
        gen.turn = turn_message(self.template, self.variables, plan.before, plan.prompt, plan.opened, turn,
                                plan.writer, self.blocks, closed=went_past, in_reasoning=start == REASONING)
        return gen

    def prompt_records(self, plan: PromptPlan) -> list[TokenRecord]:
        """The prompt's tokens as the model is given them (content literal or not), with roles."""
        return encode_prompt(self.engine, plan.prompt, plan.segments, literal_content=self.literal_content)

    def injections(self, plan: PromptPlan) -> list[Injection | FieldInjection]:
        """Message content that becomes control tokens (unless content is literal)."""
        if self.literal_content:
            return []  # fields with control tokens were refused by plan()
        return [*find_injections(self.engine, plan.prompt, plan.segments),
                *find_field_injections(self.engine, plan.fields)]

    @property
    def warnings(self) -> list[str]:
        """What the engine found wrong with itself when it opened (a server's processed logprobs)."""
        return list(getattr(self.engine, "warnings", ()))

    def piece_text(self, token: int) -> str:
        return self.engine.piece(token).decode("utf-8", "replace")

    def uncached_prompt_tokens(self, plan: PromptPlan) -> int:
        """Prompt tokens the model has yet to evaluate for `plan` (0: not known here)."""
        return 0

    def context_used(self) -> int:
        """Tokens the model holds in its context now (0: not known here)."""
        return 0

    def close(self) -> None:
        self.engine.close()


class Workbench(BaseWorkbench):
    """A model loaded in this process."""

    engine: MultiSequenceBackend

    def __init__(self, backend: MultiSequenceBackend, template: ChatTemplate,
                 variables: Mapping[str, Any] | None = None, *, literal_content: bool = False):
        self.evaluator = PromptEvaluator(backend, workspace_for(backend))
        self._batch_evaluator: PromptEvaluator | None = None  # over the backend's multi-sequence context
        super().__init__(backend, template, variables, literal_content=literal_content)

    @property
    def backend(self) -> MultiSequenceBackend:
        return self.engine

    @property
    def decode_path(self) -> DecodePath:
        return self.engine.decode_path

    def count_tokens(self, plan: PromptPlan) -> int:
        return len(self.prompt_records(plan))

    def uncached_prompt_tokens(self, plan: PromptPlan) -> int:
        """Prompt tokens beyond the prefix the evaluator's KV cache already holds."""
        cached = self.evaluator.tokens
        ids = [r.id for r in self.prompt_records(plan)]
        shared = 0
        while shared < min(len(cached), len(ids)) and cached[shared] == ids[shared]:
            shared += 1
        return len(ids) - shared

    def context_used(self) -> int:
        return len(self.evaluator.tokens)

    def generate(self, plan: PromptPlan, params: SamplingParams, *, on_token: OnToken | None = None,
                 should_stop: Callable[[], bool] | None = None, forced: Sequence[int] = ()) -> Generation:
        return self.with_message(plan, generate(
            self.engine, self.evaluator, plan, self.markers, params, forced=forced, parser=self.turn_parser(),
            prompt_records=self.prompt_records(plan), on_token=on_token, should_stop=should_stop))

    def generate_many(self, plan: PromptPlan, params: Sequence[SamplingParams], *,
                      on_token: Sequence[OnToken | None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list[Generation]:
        """One generation per entry of `params` after the same plan, decoded together in one
        multi-sequence context of the model (its own prompt evaluator and KV prefix reuse). A
        stop ends every unfinished one as interrupted."""
        if len(params) <= 1:
            return super().generate_many(plan, params, on_token=on_token, should_stop=should_stop)
        records = self.prompt_records(plan)
        n_ctx = self.info.n_ctx
        cells = sequence_cells(len(records), params, n_ctx)
        seqs = self.engine.sequences(len(params), -(-cells // 256) * 256)
        if self._batch_evaluator is None or self._batch_evaluator.backend is not seqs:
            self._batch_evaluator = PromptEvaluator(seqs, self.evaluator.workspace)
        return [self.with_message(plan, gen) for gen in generate_batch(
            self.engine, seqs, self._batch_evaluator, plan, self.markers, params, parser=self.turn_parser(),
            prompt_records=records, n_ctx=n_ctx, on_token=on_token, should_stop=should_stop)]

    def score(self, conversation: Conversation) -> tuple[PromptPlan, list[TokenRecord]]:
        """Teacher-forced statistics of the conversation exactly as rendered (mode as-is)."""
        plan = self.plan(conversation, AS_IS)
        records = self.prompt_records(plan)
        stats, _ = self.evaluator.evaluate([r.id for r in records])
        return plan, [replace(r, stats=s) for r, s in zip(records, stats, strict=True)]
