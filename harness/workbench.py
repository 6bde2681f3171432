"""A loaded model with a chosen template: plan, generate and score conversations.

The workbench ties a backend to a template, the template's derived turn markers and the
template variables (``bos_token``/``eos_token`` from the model, overridable), and owns the prompt
evaluator whose KV cache is reused from one call to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.conversation import SYSTEM, Conversation
from harness.entropy import StatsWorkspace
from harness.errors import ContextOverflowError
from harness.evaluation import Injection, PromptEvaluator, encode_prompt, find_injections
from harness.generate import StreamEvent, generate
from harness.markers import TurnMarkers, derive_markers
from harness.modes import AS_IS, REPLY, PromptPlan, plan_prompt
from harness.records import Generation, TokenRecord
from harness.sampling import SamplingParams
from harness.templates import GGUF, ChatTemplate, load_template

OVERFLOW_ERROR = "error"
OVERFLOW_TRUNCATE = "truncate-oldest"
OVERFLOW_POLICIES = (OVERFLOW_ERROR, OVERFLOW_TRUNCATE)


def model_variables(backend: Backend) -> dict[str, Any]:
    return {"bos_token": backend.info.bos_text, "eos_token": backend.info.eos_text}


def choose_template(spec: str | None, embedded: str | None, model_name: str,
                    user_dir: Path | None = None) -> ChatTemplate:
    """`spec`, or the model's embedded template, or an error that names --template."""
    return load_template(spec or GGUF, embedded=embedded, model_name=model_name, user_dir=user_dir)


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


class Workbench:
    def __init__(self, backend: Backend, template: ChatTemplate,
                 variables: Mapping[str, Any] | None = None):
        self.backend = backend
        self.overrides = dict(variables or {})
        self.evaluator = PromptEvaluator(backend, StatsWorkspace(backend.info.n_vocab, backend.info.eog_ids))
        self.template = template
        self.markers: TurnMarkers = derive_markers(template, self.variables)
        self.literal_content = False  # tokenize message content as plain text

    @property
    def variables(self) -> dict[str, Any]:
        return {**model_variables(self.backend), **self.overrides}

    def set_template(self, template: ChatTemplate) -> None:
        markers = derive_markers(template, self.variables)  # raises before anything changes
        self.template, self.markers = template, markers

    def plan(self, conversation: Conversation, mode: str = REPLY, text: str = "") -> PromptPlan:
        return plan_prompt(conversation, self.template, mode, text=text, variables=self.variables)

    def fit_conversation(self, conversation: Conversation, mode: str = REPLY, text: str = "",
                         policy: str = OVERFLOW_ERROR) -> tuple[PromptPlan, int]:
        """The prompt plan, after dropping the oldest non-system messages if `policy` is
        truncate-oldest and the prompt does not fit the context; returns (plan, dropped)."""
        def tokens_of(plan: PromptPlan) -> int:
            return len(encode_prompt(self.backend, plan.prompt, plan.segments, literal_content=self.literal_content))

        return fit_plan(conversation, lambda c: self.plan(c, mode, text), tokens_of,
                        self.backend.info.n_ctx, policy)

    def generate(self, plan: PromptPlan, params: SamplingParams, *,
                 on_token: Callable[[StreamEvent], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, forced: Sequence[int] = ()) -> Generation:
        return generate(self.backend, self.evaluator, plan, self.markers, params, forced=forced,
                        on_token=on_token, should_stop=should_stop, literal_content=self.literal_content)

    def score(self, conversation: Conversation) -> tuple[PromptPlan, list[TokenRecord]]:
        """Teacher-forced statistics of the conversation exactly as rendered (mode as-is)."""
        plan = self.plan(conversation, AS_IS)
        records = encode_prompt(self.backend, plan.prompt, plan.segments, literal_content=self.literal_content)
        stats, _ = self.evaluator.evaluate([r.id for r in records])
        return plan, [replace(r, stats=s) for r, s in zip(records, stats, strict=True)]

    def injections(self, plan: PromptPlan) -> list[Injection]:
        """Message content that becomes control tokens (unless content is literal)."""
        return [] if self.literal_content else find_injections(self.backend, plan.prompt, plan.segments)

    def piece_text(self, token: int) -> str:
        return self.backend.piece(token).decode("utf-8", "replace")

    def close(self) -> None:
        self.backend.close()
