"""A server with a chosen template: the Workbench's interface over a RemoteEngine.

The template renders here, exactly as for a local model; the server only completes raw text.
End-of-generation ids are the server's EOS (when it names one) plus the template's assistant
close marker when that is exactly one token (an OpenAI-compatible server names no EOS at all,
so ``<|im_end|>`` is found this way). ``score`` needs logits of the prompt and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from harness.conversation import ASSISTANT, Conversation
from harness.errors import CommandError
from harness.evaluation import Injection
from harness.generate import StreamEvent
from harness.markers import TurnMarkers, derive_markers
from harness.modes import PromptPlan, plan_prompt
from harness.records import Generation, TokenRecord
from harness.remote import RemoteEngine
from harness.remote_generate import DEFAULT_N_PROBS, generate_remote
from harness.sampling import SamplingParams
from harness.templates import ChatTemplate
from harness.workbench import OVERFLOW_ERROR, fit_plan


def end_of_generation_ids(engine: RemoteEngine, markers: TurnMarkers) -> frozenset[int]:
    ids = set(engine.info.eog_ids)
    close = markers.closes.get(ASSISTANT, "").strip()
    token = engine.token_id(close) if close else None
    if token is not None:
        ids.add(token)
    return frozenset(ids)


class RemoteWorkbench:
    literal_content = False  # the server tokenizes the whole prompt; content cannot be literal

    def __init__(self, engine: RemoteEngine, template: ChatTemplate,
                 variables: Mapping[str, Any] | None = None, n_probs: int = DEFAULT_N_PROBS):
        self.engine = engine
        self.overrides = dict(variables or {})
        self.n_probs = n_probs
        self.template = template
        self.markers = derive_markers(template, self.variables)
        self._learn_eog()

    @property
    def backend(self) -> RemoteEngine:
        """The engine, under the name the session and the REPL use for a local backend."""
        return self.engine

    @property
    def variables(self) -> dict[str, Any]:
        info = self.engine.info
        return {"bos_token": info.bos_text, "eos_token": info.eos_text, **self.overrides}

    def _learn_eog(self) -> None:
        eog = end_of_generation_ids(self.engine, self.markers)
        self.engine.info = replace(self.engine.info, eog_ids=eog)

    def set_template(self, template: ChatTemplate) -> None:
        markers = derive_markers(template, self.variables)
        self.template, self.markers = template, markers
        self._learn_eog()

    def plan(self, conversation: Conversation, mode: str = "reply", text: str = "") -> PromptPlan:
        return plan_prompt(conversation, self.template, mode, text=text, variables=self.variables)

    def fit_conversation(self, conversation: Conversation, mode: str = "reply", text: str = "",
                         policy: str = OVERFLOW_ERROR) -> tuple[PromptPlan, int]:
        """As Workbench.fit_conversation; without a known context length nothing is dropped
        (the server reports an overflow itself)."""
        n_ctx = self.engine.info.n_ctx
        if n_ctx <= 0:
            return self.plan(conversation, mode, text), 0
        return fit_plan(conversation, lambda c: self.plan(c, mode, text),
                        lambda plan: len(self.engine.tokenize(plan.prompt)), n_ctx, policy)

    def generate(self, plan: PromptPlan, params: SamplingParams, *,
                 on_token: Callable[[StreamEvent], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, forced: Sequence[int] = ()) -> Generation:
        if forced:
            raise CommandError("branching at a token needs a local model: a server cannot be "
                               "given tokens to force", hint="use /retry, or chat with --model")
        return generate_remote(self.engine, plan, self.markers, params, eog_ids=self.engine.info.eog_ids,
                               n_probs=self.n_probs, on_token=on_token, should_stop=should_stop)

    def score(self, conversation: Conversation) -> tuple[PromptPlan, list[TokenRecord]]:
        raise CommandError("score needs the prompt's logits, which a server does not give",
                           hint="score with a local --model")

    def injections(self, plan: PromptPlan) -> list[Injection]:
        return []  # a server does not say which tokens are control tokens

    def piece_text(self, token: int) -> str:
        return self.engine.piece(token).decode("utf-8", "replace")

    def close(self) -> None:
        self.engine.close()
