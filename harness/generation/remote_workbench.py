"""A server with a chosen template: the workbench over a RemoteEngine.

The template renders here, exactly as for a local model; the server only completes raw text.
End-of-generation ids are the server's EOS (when it names one) plus the template's assistant
close marker when that is exactly one token, learned afresh at each template (an OpenAI-compatible server names no EOS at all,
so ``<|im_end|>`` is found this way). ``score`` needs the prompt's probabilities: a server that
gives them (vLLM's ``prompt_logprobs``) scores with truncated top-k statistics, as generation does
(surprisal exact); others are refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any

from harness.backends.remote import RemoteEngine
from harness.errors import CommandError
from harness.generation.evaluation import FieldInjection, Injection
from harness.generation.records import Generation, TokenRecord
from harness.generation.remote_loop import generate_remote
from harness.generation.settings import DEFAULT_N_PROBS, SamplingParams
from harness.generation.turn import OnToken
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import ASSISTANT, Conversation
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import AS_IS, PromptPlan
from harness.prompt.templates import ChatTemplate
from harness.stats.entropy import StepStats
from harness.stats.topk import truncated_stats


def prompt_step(row: Sequence[tuple[int, float, int | None]], token: int, k: int,
                eog_ids: frozenset[int], n_vocab: int | None = None) -> StepStats:
    """A prompt position's statistics from [(id, probability, rank)]: the top-k by rank (the
    token that came is listed even when it is not among them) and that token's probability."""
    chosen = next((p for i, p, _ in row if i == token), None)
    ranked = sorted(row, key=lambda e: (e[2] if e[2] is not None else 1 << 30, -e[1]))
    top = [(i, p) for i, p, rank in ranked if rank is None or rank <= k][:k]
    return truncated_stats(top, chosen, eog_ids, n_vocab)


def end_of_generation_ids(server_eog: frozenset[int], engine: RemoteEngine,
                          markers: TurnMarkers) -> frozenset[int]:
    """The server's own end-of-generation ids plus the template's assistant close marker when
    that is exactly one token."""
    ids = set(server_eog)
    close = markers.closes.get(ASSISTANT, "").strip()
    token = engine.token_id(close) if close else None
    if token is not None:
        ids.add(token)
    return frozenset(ids)


class RemoteWorkbench(BaseWorkbench):
    """A model behind a server: the server samples, harness renders and keeps statistics."""

    engine: RemoteEngine
    is_remote = True

    def __init__(self, engine: RemoteEngine, template: ChatTemplate,
                 variables: Mapping[str, Any] | None = None, n_probs: int = DEFAULT_N_PROBS):
        # n_probs: the top-k of `score` (prompt logprobs); generation asks for SamplingParams.n_probs
        self.server_eog = frozenset(engine.info.eog_ids)  # what the server itself names
        self.n_probs = n_probs
        super().__init__(engine, template, variables)  # learns the end-of-generation ids

    @property
    def backend_url(self) -> str | None:
        return self.engine.url

    @property
    def model_label(self) -> str:
        return f"the server at {self.engine.url}"

    def _learn_eog(self) -> None:
        eog = end_of_generation_ids(self.server_eog, self.engine, self.markers)
        self.engine.info = replace(self.engine.info, eog_ids=eog)

    def _derive(self, template: ChatTemplate, overrides: Mapping[str, Any]) -> None:
        super()._derive(template, overrides)
        self._learn_eog()  # the close marker may have changed

    def count_tokens(self, plan: PromptPlan) -> int:
        return len(self.engine.tokenize(plan.prompt))

    def generate(self, plan: PromptPlan, params: SamplingParams, *, on_token: OnToken | None = None,
                 should_stop: Callable[[], bool] | None = None, forced: Sequence[int] = ()) -> Generation:
        if forced:
            raise CommandError("branching at a token needs a local model: a server cannot be "
                               "given tokens to force", hint="use /retry, or chat with --model")
        return self.with_message(plan, generate_remote(
            self.engine, plan, self.markers, params, eog_ids=self.eog_ids, parser=self.turn_parser(),
            on_token=on_token, should_stop=should_stop))

    def generate_many(self, plan: PromptPlan, params: Sequence[SamplingParams], *,
                      on_token: Sequence[OnToken | None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> list[Generation]:
        """One generation per entry of `params` after the same plan, up to the server's slots at
        once (llama-server decodes its busy slots together in one batch): each is the loop of
        :meth:`generate`, its own request, so its tokens and statistics are what it would be
        alone. A stop (or an error in one) ends every unfinished one as interrupted; the error is
        raised once the others have stopped. `on_token` callbacks are called one at a time."""
        width = min(len(params), max(1, self.engine.slots))
        if width <= 1:
            return super().generate_many(plan, params, on_token=on_token, should_stop=should_stop)
        failed = threading.Event()
        delivering = threading.Lock()

        def stop() -> bool:
            return failed.is_set() or (should_stop is not None and should_stop())

        def serialized(callback: OnToken | None) -> OnToken | None:
            if callback is None:
                return None

            def deliver(event):
                with delivering:
                    callback(event)
            return deliver

        def one(i: int) -> Generation:
            try:
                return self.generate(plan, params[i], should_stop=stop,
                                     on_token=serialized(on_token[i] if on_token else None))
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="harness candidate") as pool:
            futures = [pool.submit(one, i) for i in range(len(params))]
            try:
                wait(futures)
            except BaseException:  # Ctrl-C here: the others stop at their next token
                failed.set()
                raise
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return [f.result() for f in futures]

    def score(self, conversation: Conversation) -> tuple[PromptPlan, list[TokenRecord]]:
        """Teacher-forced statistics from the server's prompt logprobs (top-k, truncated)."""
        scorer = getattr(self.engine, "prompt_logprobs", None)
        if scorer is None:
            raise CommandError("score needs the prompt's logits, which this server does not give",
                               hint="score with a local --model, or on vLLM (prompt_logprobs)")
        plan = self.plan(conversation, AS_IS)
        records = self.prompt_records(plan)
        rows = scorer([r.id for r in records], self.n_probs)
        n_vocab = self.info.n_vocab or None
        return plan, [replace(r, stats=None if row is None else
                              prompt_step(row, r.id, self.n_probs, self.eog_ids, n_vocab))
                      for r, row in zip(records, rows, strict=True)]

    def injections(self, plan: PromptPlan) -> list[Injection | FieldInjection]:
        return []  # a server does not say which tokens are control tokens
