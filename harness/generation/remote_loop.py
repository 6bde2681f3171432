"""The generation loop over a server: stream its tokens, apply the EOS policy, keep statistics.

The server samples; harness turns each reported token into a TokenRecord whose statistics come
from the top-k list (:mod:`harness.stats.topk`, marked truncated). Stop strings and interruption are
checked by the turn (:mod:`harness.generation.turn`, shared with the local loop), between
streamed tokens (closing the stream ends the request). EOS policies:

- ``stop``: the server stops at an end-of-generation token; that token is recorded last (its
  statistics come with the server's final message, or from one extra 1-token request with the
  end-of-generation ids banned, whose top-k is the distribution the EOS was drawn from).
- ``continue``: emulated, since servers have no "go on past EOS" (llama-server's ``ignore_eos``
  bans the tokens): after an EOS, a new completion resumes with the EOS appended.
- ``ban``: the end-of-generation ids get a -inf logit bias (OpenAI-compatible: -100).

Prompt tokens get no statistics: llama-server does not score prompts and llama-cpp-python's
``echo`` logprobs are misaligned by one position, so ``prompt_tokens`` is left empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from harness.backends.remote import (
    CompletionRequest,
    RemoteEngine,
    RemoteFinish,
    RemoteStep,
    TopEntry,
)
from harness.generation.records import Generation, TokenRecord
from harness.generation.settings import EOS_BAN, EOS_CONTINUE, EXTRA_SAMPLERS, SamplingParams
from harness.generation.turn import GeneratedTurn, OnToken, StopReason, resolve_bias
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser
from harness.stats.topk import truncated_stats

TEXT_PROBE_N_PROBS = 10  # the EOS probe's top-k on a server that lists tokens by text


def final_ids(engine: RemoteEngine, step: RemoteStep) -> RemoteStep:
    """`step` with the provisional ids of a stream replaced by the engine's final ones."""
    fix = engine.canonical
    return RemoteStep(fix(step.id), step.raw, step.prob,
                      tuple(TopEntry(fix(e.id), e.text, e.prob) for e in step.top))


def eos_step_from_probe(probe: RemoteStep, eog: Iterable[int], eos_id: int | None) -> RemoteStep:
    """The end-of-generation token of a distribution sampled with the EOS banned: the most likely
    end-of-generation id in its top-k; else its one empty-text entry (llama-cpp-python names
    control tokens ""); else the EOS id with an unknown probability."""
    eog = set(eog)
    known = [e for e in probe.top if e.id in eog]
    empty = [e for e in probe.top if e.text == ""]
    fallback = eos_id if eos_id is not None else min(eog, default=-1)
    if known:
        best = max(known, key=lambda e: e.prob)
        return RemoteStep(best.id, best.text.encode("utf-8"), best.prob, probe.top)
    if len(empty) == 1 and fallback >= 0:
        top = tuple(TopEntry(fallback, e.text, e.prob) if e.text == "" else e for e in probe.top)
        return RemoteStep(fallback, b"", empty[0].prob, top)
    return RemoteStep(fallback, b"", None, probe.top)


class RemoteGeneration:
    """One generated turn over a server (state of the loop; :func:`generate_remote` runs it)."""

    def __init__(self, engine: RemoteEngine, plan: PromptPlan, markers: TurnMarkers,
                 params: SamplingParams, eog_ids: frozenset[int], parser: TurnParser,
                 on_token: OnToken | None):
        self.engine, self.plan, self.params, self.eog = engine, plan, params, eog_ids
        self.bias = resolve_bias(engine, params.logit_bias, engine.info.n_vocab)
        self.turn = GeneratedTurn(plan, markers, params, parser, on_token)
        self.steps: list[RemoteStep] = []
        self.ids: list[int] = []
        self.raw = b""

    def request(self, max_tokens: int, *, ban_eos: bool = False, n_probs: int | None = None) -> CompletionRequest:
        p = self.params
        ban = tuple(sorted(self.eog)) if (p.eos == EOS_BAN or ban_eos) else ()
        return CompletionRequest(
            prompt=self.plan.prompt, max_tokens=max_tokens, temperature=p.temperature, top_k=p.top_k,
            top_p=p.top_p, min_p=p.min_p, repeat_penalty=p.repeat_penalty, repeat_last_n=p.repeat_last_n,
            seed=p.seed, n_probs=n_probs or p.n_probs, generated_ids=tuple(self.ids),
            generated_text=self.raw.decode("utf-8", "replace"), bias=self.bias, ban=ban,
            samplers={name: getattr(p, name) for name in EXTRA_SAMPLERS} if p.extra_samplers else {})

    def record(self, step: RemoteStep) -> TokenRecord:
        stats = truncated_stats([(e.id, e.prob) for e in step.top], step.prob, self.eog,
                                self.engine.info.n_vocab or None, by_id=self.engine.top_by_id)
        return TokenRecord(step.id, step.raw.decode("utf-8", "replace"), "", stats, raw=step.raw)

    def settle(self) -> None:
        """Give every recorded step its final ids (after the streams have ended)."""
        self.steps = [final_ids(self.engine, s) for s in self.steps]
        self.ids = [s.id for s in self.steps]

    def accept(self, step: RemoteStep) -> StopReason | None:
        """Record a token and add it to the turn; the stop reason if it ends the turn."""
        self.steps.append(step)
        self.ids.append(step.id)
        self.raw += step.raw
        return self.turn.add(self.record(step))

    def run_once(self, budget: int, should_stop) -> tuple[StopReason | None, RemoteFinish | None]:
        """One server completion; (stop reason if decided, the server's finish)."""
        stream = self.engine.complete(self.request(budget), should_stop=should_stop)
        try:
            for item in stream:
                if should_stop is not None and should_stop():
                    return StopReason.INTERRUPTED, None
                if isinstance(item, RemoteFinish):
                    return None, item
                stopped = self.accept(item)
                if stopped:
                    return stopped, None
                if should_stop is not None and should_stop():
                    return StopReason.INTERRUPTED, None
                if len(self.ids) >= self.params.max_tokens:  # a server that ignores its budget
                    return StopReason.MAX_TOKENS, None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return None, RemoteFinish("length")

    def eos_step(self, finish: RemoteFinish) -> RemoteStep:
        if finish.eos_step is not None:
            return finish.eos_step
        # a list keyed by text merges every control token into one "" entry holding the *last*
        # (least likely) one's probability; a short list rarely holds more than the EOS
        k = None if self.engine.top_by_id else min(self.params.n_probs, TEXT_PROBE_N_PROBS)
        items = list(self.engine.complete(self.request(1, ban_eos=True, n_probs=k)))
        probe = next((s for s in items if isinstance(s, RemoteStep)), None)
        if probe is None:
            return RemoteStep(self.engine.info.eos_id or -1, b"", None, ())
        return eos_step_from_probe(final_ids(self.engine, probe), self.eog, self.engine.info.eos_id)


def generate_remote(engine: RemoteEngine, plan: PromptPlan, markers: TurnMarkers,
                    params: SamplingParams, *, eog_ids: frozenset[int], parser: TurnParser,
                    on_token: OnToken | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Generation:
    params.validate()
    t0 = time.perf_counter()
    run = RemoteGeneration(engine, plan, markers, params, eog_ids, parser, on_token)
    reason: StopReason | None = None
    eos: RemoteStep | None = None
    while reason is None and len(run.ids) < params.max_tokens:
        reason, finish = run.run_once(params.max_tokens - len(run.ids), should_stop)
        run.settle()
        if reason is not None or finish is None or finish.reason != "eos":
            break
        step = run.eos_step(finish)
        if not step.raw and step.id >= 0:
            step = RemoteStep(step.id, engine.piece(step.id), step.prob, step.top)
        if params.eos != EOS_CONTINUE:
            eos, reason = step, StopReason.EOS
            break
        reason = run.accept(step)
    run.settle()
    # the streamed records carried provisional ids: the turn keeps the settled ones
    run.turn.tokens = [run.record(s) for s in run.steps]
    if eos is not None:
        run.turn.end_with(run.record(eos))  # the EOS is last, not in the text
    result = run.turn.finish(Generation(plan.prompt, plan.mode, plan.writer), reason or StopReason.MAX_TOKENS)
    result.seconds = time.perf_counter() - t0
    return result
