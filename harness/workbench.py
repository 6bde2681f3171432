"""A loaded model with a chosen template: plan, generate and score conversations.

The workbench ties a backend to a template, the template's derived turn markers and the
template variables (``bos_token``/``eos_token`` from the model, overridable), and owns the prompt
evaluator whose KV cache is reused from one call to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.backends.base import Backend
from harness.conversation import Conversation
from harness.entropy import StatsWorkspace
from harness.evaluation import PromptEvaluator, encode_prompt
from harness.generate import StreamEvent, generate
from harness.markers import TurnMarkers, derive_markers
from harness.modes import AS_IS, REPLY, PromptPlan, plan_prompt
from harness.records import Generation, TokenRecord
from harness.sampling import SamplingParams
from harness.templates import GGUF, ChatTemplate, load_template


def model_variables(backend: Backend) -> dict[str, Any]:
    return {"bos_token": backend.info.bos_text, "eos_token": backend.info.eos_text}


def choose_template(spec: str | None, embedded: str | None, model_name: str,
                    user_dir: Path | None = None) -> ChatTemplate:
    """`spec`, or the model's embedded template, or an error that names --template."""
    return load_template(spec or GGUF, embedded=embedded, model_name=model_name, user_dir=user_dir)


class Workbench:
    def __init__(self, backend: Backend, template: ChatTemplate,
                 variables: Mapping[str, Any] | None = None):
        self.backend = backend
        self.overrides = dict(variables or {})
        self.evaluator = PromptEvaluator(backend, StatsWorkspace(backend.info.n_vocab, backend.info.eog_ids))
        self.template = template
        self.markers: TurnMarkers = derive_markers(template, self.variables)

    @property
    def variables(self) -> dict[str, Any]:
        return {**model_variables(self.backend), **self.overrides}

    def set_template(self, template: ChatTemplate) -> None:
        markers = derive_markers(template, self.variables)  # raises before anything changes
        self.template, self.markers = template, markers

    def plan(self, conversation: Conversation, mode: str = REPLY, text: str = "") -> PromptPlan:
        return plan_prompt(conversation, self.template, mode, text=text, variables=self.variables)

    def generate(self, plan: PromptPlan, params: SamplingParams, *,
                 on_token: Callable[[StreamEvent], None] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> Generation:
        return generate(self.backend, self.evaluator, plan, self.markers, params,
                        on_token=on_token, should_stop=should_stop)

    def score(self, conversation: Conversation) -> tuple[PromptPlan, list[TokenRecord]]:
        """Teacher-forced statistics of the conversation exactly as rendered (mode as-is)."""
        plan = self.plan(conversation, AS_IS)
        records = encode_prompt(self.backend, plan.prompt, plan.segments)
        stats, _ = self.evaluator.evaluate([r.id for r in records])
        return plan, [TokenRecord(r.id, r.piece, r.role, s) for r, s in zip(records, stats, strict=True)]

    def piece_text(self, token: int) -> str:
        return self.backend.piece(token).decode("utf-8", "replace")

    def close(self) -> None:
        self.backend.close()
