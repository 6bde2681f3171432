"""One sequence's part of the token loop: its sampler state and its turn.

Whether sequences are decoded one at a time (:mod:`harness.generation.loop`) or several together
(:mod:`harness.generation.batch`), each keeps its own settings, biases, EOS policy, RNG,
repetition window, budget and :class:`~harness.generation.turn.GeneratedTurn` (text, stops,
streaming, roles), and is handed one logits row and its statistics per step. The loops differ only
in where rows come from.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from harness.backends.base import Backend
from harness.generation.dry import Breakers, breaker_table, dry_penalties
from harness.generation.records import Generation, TokenRecord
from harness.generation.sampling import Mirostat, adjustments, sample_with_entropy
from harness.generation.settings import EOS_BAN, EOS_STOP, SamplingParams
from harness.generation.turn import GeneratedTurn, OnToken, StopReason, resolve_bias
from harness.prompt.markers import TurnMarkers
from harness.prompt.modes import PromptPlan
from harness.prompt.turns import TurnParser
from harness.stats.entropy import StepStats


def token_record(backend: Backend, token: int, stats: StepStats | None) -> TokenRecord:
    raw = backend.piece(token)
    return TokenRecord(token, raw.decode("utf-8", "replace"), "", stats, raw=raw)


_BREAKERS: weakref.WeakKeyDictionary[Backend, Breakers] = weakref.WeakKeyDictionary()


def _breakers(backend: Backend) -> Breakers:
    """DRY's sequence breakers in `backend`'s vocabulary: found once per loaded model (a scan of
    the vocabulary, about half a second for SmolLM2's 49k tokens), kept while the model is."""
    table = _BREAKERS.get(backend)
    if table is None:
        table = _BREAKERS[backend] = breaker_table(backend.info.n_vocab, backend.piece,
                                                   lambda text: backend.tokenize(text, special=False))
    return table


class SequenceState:
    """Sampling state and turn of one sequence generating after `context` (prompt + forced)."""

    def __init__(self, backend: Backend, plan: PromptPlan, markers: TurnMarkers, params: SamplingParams,
                 parser: TurnParser, context: Sequence[int], *, n_ctx: int, on_token: OnToken | None = None):
        self.backend, self.plan, self.params = backend, plan, params
        self.bias = resolve_bias(backend, params.logit_bias, backend.info.n_vocab)
        self.eog = backend.info.eog_ids if params.eos == EOS_STOP else frozenset()
        self.banned = sorted(backend.info.eog_ids) if params.eos == EOS_BAN else []
        self.rng = np.random.default_rng(params.seed)
        self.mirostat = Mirostat(params.mirostat_tau, params.mirostat_eta) if params.mirostat == 2 else None
        dry_on = params.dry_multiplier > 0 and params.dry_penalty_last_n > 0
        self.dry_breakers = _breakers(backend) if dry_on else None
        self.window = list(context[-params.dry_penalty_last_n:]) if dry_on else []  # what DRY looks back over
        self.turn = GeneratedTurn(plan, markers, params, parser, on_token)
        self.budget = min(params.max_tokens, n_ctx - len(context))
        n = params.repeat_last_n
        self.recent = list(context[-n:]) if n > 0 else []
        self.reason = StopReason.MAX_TOKENS
        self.drawn = 0
        self.last: tuple[int, StepStats] | None = None  # the token to evaluate next, its stats

    def draw(self, logits: np.ndarray, step: StepStats, raw_top: Callable[[int], np.ndarray],
             surprisal_of: Callable[[int], float]) -> bool:
        """Sample from one row (`step`: its statistics; `raw_top`, `surprisal_of`: read the same
        row), record and stream the token; False when the token ended the turn."""
        params = self.params
        dry = None if self.dry_breakers is None else dry_penalties(
            self.window, self.dry_breakers, multiplier=params.dry_multiplier, base=params.dry_base,
            allowed_length=params.dry_allowed_length)
        adjust = adjustments(logits, self.bias, self.banned, self.recent, params, dry)
        token, drawn_bits = sample_with_entropy(logits, params, self.rng, adjust, raw_top, self.mirostat)
        step = replace(step, surprisal_bits=surprisal_of(token), sampling_entropy_bits=drawn_bits)
        record = token_record(self.backend, token, step)
        self.drawn += 1
        if token in self.eog:
            self.turn.end_with(record)
            self.reason = StopReason.EOS
            return False
        stopped = self.turn.add(record)
        if stopped is not None:
            self.reason = stopped
            return False
        if params.repeat_last_n > 0:
            self.recent.append(token)
            del self.recent[: -params.repeat_last_n]
        if self.dry_breakers is not None:
            self.window.append(token)
            del self.window[: -params.dry_penalty_last_n]
        self.last = (token, step)
        return True

    @property
    def exhausted(self) -> bool:
        return self.drawn >= self.budget

    def finish(self, result: Generation) -> Generation:
        return self.turn.finish(result, self.reason)
