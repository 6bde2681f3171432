"""Several generations after one prompt, decoded together.

The prompt is evaluated once, on sequence 0 of a multi-sequence context (with the prompt
evaluator's prefix reuse and statistics), and copied to every other sequence's KV. Each step is
one decode of one token per live sequence; the statistics of the B rows are computed in one
vectorised pass (:meth:`harness.stats.entropy.StatsWorkspace.block`), and each sequence draws from
its own row with its own :class:`~harness.generation.sequence.SequenceState` (settings, RNG,
stops, turn). A sequence that ends leaves the batch; the others go on. A stop request ends every
sequence still running as interrupted.

Per-token values equal a serial run's bit for bit on a batch-invariant decode path (the default;
harness.backends.invariance measures it at load), and on the fake backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial

from harness.backends.base import Backend, Sequences
from harness.generation.evaluation import PromptEvaluator
from harness.generation.records import Generation, TokenRecord
from harness.generation.sequence import SequenceState
from harness.generation.settings import SamplingParams
from harness.generation.turn import OnToken, StopReason
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser


def sequence_cells(n_prompt: int, params: Sequence[SamplingParams], n_ctx: int) -> int:
    """KV cells one sequence of a batch needs: the prompt, then the largest budget (each sequence
    is limited to `n_ctx`, the single-sequence context, as a serial run would be)."""
    return n_prompt + max((max(0, min(p.max_tokens, n_ctx - n_prompt)) for p in params), default=0)


def generate_batch(backend: Backend, seqs: Sequences, evaluator: PromptEvaluator, plan: PromptPlan,
                   markers: TurnMarkers, params: Sequence[SamplingParams], *, parser: TurnParser,
                   prompt_records: Sequence[TokenRecord], n_ctx: int,
                   on_token: Sequence[OnToken | None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> list[Generation]:
    """One generation per entry of `params` after `plan`, decoded together on `seqs` (its
    sequence 0 driven by `evaluator`). `n_ctx` bounds each sequence as a serial run's context
    would; `on_token[i]` streams sequence i."""
    for p in params:
        p.validate()
    if not 1 <= len(params) <= seqs.n_seq_max:
        raise ValueError(f"a batch takes 1..{seqs.n_seq_max} generations, got {len(params)}")
    t0 = time.perf_counter()
    ids = [r.id for r in prompt_records]
    evaluator.check_fits(len(ids), 1)
    stats, last = evaluator.evaluate(ids)
    prompt_tokens = [replace(r, stats=s) for r, s in zip(prompt_records, stats, strict=True)]
    t1 = time.perf_counter()
    seqs.fork(len(params))
    streams = list(on_token) if on_token is not None else [None] * len(params)
    states = [SequenceState(backend, plan, markers, p, parser, ids, n_ctx=n_ctx, on_token=s)
              for p, s in zip(params, streams, strict=True)]
    ended = [t1] * len(states)
    _decode_together(seqs, evaluator, states, ended, last[None, :], should_stop)
    out = []
    for state, end in zip(states, ended, strict=True):
        result = Generation(plan.prompt, plan.mode, plan.writer)
        result.prompt_tokens, result.prompt_seconds = prompt_tokens, t1 - t0
        state.finish(result)
        result.seconds = end - t1
        out.append(result)
    return out


def _decode_together(seqs: Sequences, evaluator: PromptEvaluator, states: list[SequenceState],
                     ended: list[float], rows, should_stop: Callable[[], bool] | None) -> None:
    """Step every live sequence until each has ended; `rows[r]` is the row of live[r] (at first
    one row, the prompt's last, shared by all)."""
    ws = evaluator.workspace
    live = [i for i, s in enumerate(states) if s.budget > 0]
    shared = True
    while live:
        block = ws.block(rows)
        going = []
        for r, i in enumerate(live):
            k = 0 if shared else r
            state = states[i]
            if state.draw(rows[k], block[k], partial(ws.block_top, k), partial(ws.block_surprisal, k)) \
                    and not state.exhausted:
                going.append(i)
            else:
                ended[i] = time.perf_counter()
        if going and should_stop is not None and should_stop():
            now = time.perf_counter()
            for i in going:
                states[i].reason, ended[i] = StopReason.INTERRUPTED, now
            return
        if not going:
            return
        tokens = []
        for i in going:
            last = states[i].last
            assert last is not None
            tokens.append(last[0])
        rows = seqs.step(going, tokens)
        live, shared = going, False
