"""The local token loop: evaluate the prompt, then sample token by token under an EOS policy.

Per step: read the logits view, compute the model's statistics (temperature 1, full vocabulary),
then let the sequence (:class:`harness.generation.sequence.SequenceState`: biases, EOS ban,
repetition penalty, sampler, turn) draw the token, and evaluate it. An end-of-generation token
under ``stop`` ends the turn and is recorded last, without text. Several sequences after one
prompt are decoded together by :mod:`harness.generation.batch`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from harness.backends.base import Backend
from harness.generation.evaluation import PromptEvaluator
from harness.generation.records import Generation, TokenRecord
from harness.generation.sequence import SequenceState, token_record
from harness.generation.settings import SamplingParams
from harness.generation.turn import OnToken, StopReason
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser


def generate(backend: Backend, evaluator: PromptEvaluator, plan: PromptPlan, markers: TurnMarkers,
             params: SamplingParams, *, parser: TurnParser, prompt_records: Sequence[TokenRecord],
             on_token: OnToken | None = None, should_stop: Callable[[], bool] | None = None,
             forced: Sequence[int] = ()) -> Generation:
    """Generate after `plan` (`prompt_records`: its tokens, roles attributed). `forced` tokens
    (a branch: the turn so far plus a chosen alternative) are evaluated with the prompt, recorded
    and streamed as generated tokens, and sampling continues after them for up to `max_tokens`
    more."""
    params.validate()
    result = Generation(plan.prompt, plan.mode, plan.writer)
    t0 = time.perf_counter()
    ids = [r.id for r in prompt_records]
    context = ids + list(forced)
    evaluator.check_fits(len(context), 1)
    stats, logits = evaluator.evaluate(context)
    result.prompt_tokens = [replace(r, stats=s) for r, s in zip(prompt_records, stats[: len(ids)], strict=True)]
    t1 = time.perf_counter()
    result.prompt_seconds = t1 - t0

    seq = SequenceState(backend, plan, markers, params, parser, context, n_ctx=backend.info.n_ctx,
                        on_token=on_token)
    ws = evaluator.workspace
    for token, step in zip(forced, stats[len(ids):], strict=True):
        seq.turn.add(token_record(backend, token, step), look=False, silent=token in seq.eog)
    budget = seq.budget
    if forced and forced[-1] in seq.eog:
        budget, seq.reason = 0, StopReason.EOS
    for _ in range(budget):
        if seq.last is not None:
            token_id, token_stats = seq.last
            logits = backend.decode([token_id], all_logits=False)
            evaluator.accept(token_id, token_stats)
        step = ws.step(logits, None)
        if not seq.draw(logits, step, ws.raw_top, ws.surprisal_after_step):
            break
        if should_stop is not None and should_stop():
            seq.reason = StopReason.INTERRUPTED
            break
    seq.finish(result)
    result.seconds = time.perf_counter() - t1
    return result
