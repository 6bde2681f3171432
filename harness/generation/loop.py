"""The local token loop: evaluate the prompt, then sample token by token under an EOS policy.

Per step: read the logits view, compute the model's statistics (temperature 1, full vocabulary),
apply biases / EOS ban / repetition penalty, sample, then hand the token to the turn
(:class:`harness.generation.turn.GeneratedTurn`: text, stops, streaming, roles) and evaluate it.
An end-of-generation token under ``stop`` ends the turn and is recorded last, without text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from harness.backends.base import Backend
from harness.generation.evaluation import PromptEvaluator
from harness.generation.records import Generation, TokenRecord
from harness.generation.sampling import adjustments, sample_with_entropy
from harness.generation.settings import EOS_BAN, EOS_STOP, SamplingParams
from harness.generation.turn import GeneratedTurn, OnToken, StopReason, resolve_bias
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser


def _record(backend: Backend, token: int, stats) -> TokenRecord:
    raw = backend.piece(token)
    return TokenRecord(token, raw.decode("utf-8", "replace"), "", stats, raw=raw)


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
    evaluator.check_fits(len(ids) + len(forced), 1)
    stats, logits = evaluator.evaluate(ids + list(forced))
    result.prompt_tokens = [replace(r, stats=s) for r, s in zip(prompt_records, stats[: len(ids)], strict=True)]
    t1 = time.perf_counter()
    result.prompt_seconds = t1 - t0

    bias = resolve_bias(backend, params.logit_bias, backend.info.n_vocab)
    eog = backend.info.eog_ids if params.eos == EOS_STOP else frozenset()
    banned = sorted(backend.info.eog_ids) if params.eos == EOS_BAN else []
    rng = np.random.default_rng(params.seed)
    ws = evaluator.workspace
    turn = GeneratedTurn(plan, markers, params, parser, on_token)
    budget = min(params.max_tokens, backend.info.n_ctx - len(ids) - len(forced))
    recent = list((ids + list(forced))[-params.repeat_last_n:]) if params.repeat_last_n > 0 else []
    for token, step in zip(forced, stats[len(ids):], strict=True):
        turn.add(_record(backend, token, step), look=False, silent=token in eog)
    reason = StopReason.MAX_TOKENS
    if forced and forced[-1] in eog:
        budget, reason = 0, StopReason.EOS
    pending: tuple[int, object] | None = None
    for _ in range(budget):
        if pending is not None:
            token_id, token_stats = pending
            logits = backend.decode([token_id], all_logits=False)
            evaluator.accept(token_id, token_stats)  # type: ignore[arg-type]
        step = ws.step(logits, None)
        adjust = adjustments(logits, bias, banned, recent, params.repeat_penalty)
        token, drawn_bits = sample_with_entropy(logits, params, rng, adjust, ws.raw_top)
        step = replace(step, surprisal_bits=ws.surprisal_after_step(token), sampling_entropy_bits=drawn_bits)
        record = _record(backend, token, step)
        if token in eog:
            turn.end_with(record)
            reason = StopReason.EOS
            break
        stopped = turn.add(record)
        if stopped is not None:
            reason = stopped
            break
        if should_stop is not None and should_stop():
            reason = StopReason.INTERRUPTED
            break
        if params.repeat_last_n > 0:
            recent.append(token)
            del recent[: -params.repeat_last_n]
        pending = (token, step)
    turn.finish(result, reason)
    result.seconds = time.perf_counter() - t1
    return result
