"""Entropy math over next-token distributions (numpy; units in every name).

All statistics describe the model's own distribution at temperature 1, before any sampling
setting or bias: entropy of the full next-token distribution, surprisal of the token that came,
total probability of the end-of-generation tokens, and the top alternatives. Logits are used
through views; per token only O(vocab) float32 scratch is touched, reused between calls. A
statistic depends only on its row of logits: never on the rows computed beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

LN2 = math.log(2.0)


def entropy_bits(logits: np.ndarray) -> float:
    """Shannon entropy, in bits, of softmax(logits) (1-D)."""
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    s = e.sum()
    return float((math.log(s) - float(e @ z) / s) / LN2)


def surprisal_bits(logits: np.ndarray, token: int) -> float:
    """-log2 p(token) under softmax(logits) (1-D)."""
    z = logits.astype(np.float64) - np.max(logits)
    return float((math.log(np.exp(z).sum()) - z[token]) / LN2)


@dataclass(frozen=True)
class StepStats:
    """Statistics of one next-token distribution and the token that followed."""

    entropy_bits: float
    surprisal_bits: float
    eot_prob: float
    top_ids: tuple[int, ...]
    top_probs: tuple[float, ...]
    varentropy_bits2: float = 0.0  # variance of -log2 p over the distribution, bits squared
    sampling_entropy_bits: float | None = None  # of the distribution actually drawn from
    truncated: bool = False  # statistics from a top-k list only (remote backends)
    tail_mass: float | None = None  # probability outside that list, when truncated
    # when truncated: what the top-k allows the full distribution's values to be (stats.topk);
    # entropy_bits and eot_prob are then point estimates inside them. hi may be +inf (vocabulary
    # size unknown)
    entropy_bounds_bits: tuple[float, float] | None = None
    eot_prob_bounds: tuple[float, float] | None = None


_NEAR_NATS = (6.0, 12.0, 24.0)  # cuts tried in turn below the maximum, in nats


def top_indices(z: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of `z` (max already subtracted), largest first.

    Exact: the entries within a few nats of the maximum are taken first (one comparison over the
    vocabulary; usually tens to hundreds survive) and partially sorted; a wider cut, and at last
    the whole vector, is used only when fewer than k survive.
    """
    k = min(k, z.shape[0])
    for cut in _NEAR_NATS:
        near = np.flatnonzero(z > -cut)
        if near.size >= k:
            part = near[np.argpartition(z[near], -k)[-k:]] if near.size > k else near
            break
    else:
        part = np.argpartition(z, -k)[-k:]
    return part[np.argsort(-z[part], kind="stable")]


class StatsWorkspace:
    """Per-token statistics of logits rows, with preallocated scratch (one per vocabulary size).

    Every row, whether it comes alone (a generation step), in a prompt's batch or in a block of
    sequences decoded together, goes through the same one-row kernel (:meth:`_row`), so a
    token's statistics cannot depend on how many rows were computed with it. Sums over the
    vocabulary are numpy's pairwise float32 reductions: within 1e-6 bits of a float64
    recomputation on Gemma-3's 262k vocabulary (BLAS ``sdot``, used before, drifted ~1e-4), at
    the speed of the dot products they replace (bench/score.py).
    """

    def __init__(self, n_vocab: int, eog_ids: Iterable[int], top_k: int = 5):
        self.n_vocab = n_vocab
        self.eog = np.array(sorted(set(eog_ids)), dtype=np.intp)
        self.top_k = top_k
        self._z = np.empty((1, n_vocab), dtype=np.float32)  # logits - max, one row per block row
        self._e = np.empty(n_vocab, dtype=np.float32)
        self._log_total = np.zeros(1)

    def _scratch(self, n: int) -> None:
        if self._z.shape[0] < n:
            self._z = np.empty((n, self.n_vocab), dtype=np.float32)
            self._log_total = np.zeros(n)

    def _row(self, logits: np.ndarray, slot: int) -> StepStats:
        """The statistics of one row (its surprisal NaN), leaving logits - max in scratch `slot`."""
        z, e = self._z[slot], self._e
        np.subtract(logits, logits.max(), out=z)
        np.exp(z, out=e)
        total = float(e.sum())  # pairwise (numpy's add.reduce over a contiguous row)
        log_total = math.log(total)
        self._log_total[slot] = log_total
        eot = float(e[self.eog].sum(dtype=np.float64)) / total if self.eog.size else 0.0
        top = top_indices(z, self.top_k)
        top_p = tuple(float(e[i]) / total for i in top)
        np.multiply(e, z, out=e)
        mean_z = float(e.sum()) / total  # E[z] in nats
        np.multiply(e, z, out=e)
        var_z = max(float(e.sum()) / total - mean_z * mean_z, 0.0)  # nats squared
        entropy = (log_total - mean_z) / LN2
        return StepStats(max(entropy, 0.0), math.nan, eot, tuple(int(i) for i in top), top_p,
                         var_z / (LN2 * LN2))

    def step(self, logits: np.ndarray, token: int | None) -> StepStats:
        """Stats of one row of logits; `token` is the one that followed (None: not yet known).
        Until the next call, :meth:`raw_top` and :meth:`surprisal_after_step` read this row."""
        stats = self._row(logits, 0)
        if token is None:
            return stats
        return replace(stats, surprisal_bits=self.surprisal_after_step(token))

    def raw_top(self, k: int) -> np.ndarray:
        """The k most likely tokens of the row last passed to :meth:`step` (for the sampler)."""
        return top_indices(self._z[0], k)

    def surprisal_after_step(self, token: int) -> float:
        """Surprisal (bits) of `token` under the row most recently passed to :meth:`step`."""
        return self.block_surprisal(0, token)

    def rows(self, logits: np.ndarray, following: Sequence[int]) -> list[StepStats]:
        """Stats of each row of a (rows, vocab) matrix; row i is followed by following[i]."""
        return [self.step(row, token) for row, token in zip(logits, following, strict=True)]

    def block(self, logits: np.ndarray) -> list[StepStats]:
        """Stats of each row of a (B, vocab) block, the following tokens not known yet (surprisal
        NaN): the rows of B sequences decoded together. Until the next call, :meth:`block_top`
        and :meth:`block_surprisal` read the same rows (for each sequence's sampler, and its
        surprisal once it has drawn)."""
        self._scratch(logits.shape[0])
        return [self._row(row, i) for i, row in enumerate(logits)]

    def block_top(self, row: int, k: int) -> np.ndarray:
        """The k most likely tokens of row `row` of the last :meth:`block`."""
        return top_indices(self._z[row], k)

    def block_surprisal(self, row: int, token: int) -> float:
        """Surprisal (bits) of `token` under row `row` of the last :meth:`block`."""
        return float(self._log_total[row] - float(self._z[row, token])) / LN2


@dataclass(frozen=True)
class RoleSummary:
    tokens: int
    mean_entropy_bits: float | None
    mean_surprisal_bits: float | None
    perplexity: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"tokens": self.tokens, "mean_entropy_bits": self.mean_entropy_bits,
                "mean_surprisal_bits": self.mean_surprisal_bits, "perplexity": self.perplexity}


def summarize(entropies: Sequence[float | None], surprisals: Sequence[float | None]) -> RoleSummary:
    """Means over the tokens that have statistics; perplexity = 2 ** mean surprisal (bits)."""
    ent = [x for x in entropies if x is not None and not math.isnan(x)]
    sur = [x for x in surprisals if x is not None and not math.isnan(x)]
    mean_e = sum(ent) / len(ent) if ent else None
    mean_s = sum(sur) / len(sur) if sur else None
    return RoleSummary(len(entropies), mean_e, mean_s, 2.0 ** mean_s if mean_s is not None else None)
