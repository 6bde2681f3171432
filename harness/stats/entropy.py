"""Entropy math over next-token distributions (numpy; units in every name).

All statistics describe the model's own distribution at temperature 1, before any sampling
setting or bias: entropy of the full next-token distribution, surprisal of the token that came,
total probability of the end-of-generation tokens, and the top alternatives. Logits are used
through views; per token only O(vocab) float32 scratch is touched, reused between calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


ROW_SCRATCH_BYTES = 8 * 1024 * 1024  # per scratch matrix of StatsWorkspace.rows
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
    """Per-token statistics with preallocated scratch (one per vocabulary size).

    Sums over the vocabulary are BLAS float32 dot products (sdot accumulates in blocks; the
    relative error stays ~1e-6 at 262k entries, far below what the statistics are read at);
    the scratch for batches of rows grows to the largest batch seen and is then reused.
    """

    def __init__(self, n_vocab: int, eog_ids: Iterable[int], top_k: int = 5):
        self.n_vocab = n_vocab
        self.eog = np.array(sorted(set(eog_ids)), dtype=np.intp)
        self.top_k = top_k
        self._z = np.empty(n_vocab, dtype=np.float32)
        self._e = np.empty(n_vocab, dtype=np.float32)
        self._ones = np.ones(n_vocab, dtype=np.float32)
        self._rows_z = np.empty((0, n_vocab), dtype=np.float32)
        self._rows_e = np.empty((0, n_vocab), dtype=np.float32)
        self._log_total = 0.0
        self._block_log_total = np.zeros(0)

    def step(self, logits: np.ndarray, token: int | None) -> StepStats:
        """Stats of one row of logits; `token` is the one that followed (None: not yet known)."""
        z, e = self._z, self._e
        np.subtract(logits, logits.max(), out=z)
        np.exp(z, out=e)
        total = float(np.dot(e, self._ones))
        log_total = math.log(total)
        self._log_total = log_total
        mean_z = float(np.dot(e, z)) / total
        eot = float(e[self.eog].sum(dtype=np.float64)) / total if self.eog.size else 0.0
        top = top_indices(z, self.top_k)
        top_p = tuple(float(e[i]) / total for i in top)
        np.multiply(e, z, out=e)  # e is free from here: e * z for the second moment
        var_z = max(float(np.dot(e, z)) / total - mean_z * mean_z, 0.0)
        entropy = (log_total - mean_z) / LN2
        surprisal = (log_total - float(z[token])) / LN2 if token is not None else math.nan
        return StepStats(max(entropy, 0.0), surprisal, eot, tuple(int(i) for i in top), top_p,
                         var_z / (LN2 * LN2))

    def raw_top(self, k: int) -> np.ndarray:
        """The k most likely tokens of the row last passed to :meth:`step` (for the sampler)."""
        return top_indices(self._z, k)

    def surprisal_after_step(self, token: int) -> float:
        """Surprisal (bits) of `token` under the row most recently passed to :meth:`step`."""
        return (self._log_total - float(self._z[token])) / LN2

    def _row_scratch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self._rows_z.shape[0] < n:
            self._rows_z = np.empty((n, self.n_vocab), dtype=np.float32)
            self._rows_e = np.empty((n, self.n_vocab), dtype=np.float32)
        return self._rows_z[:n], self._rows_e[:n]

    def rows(self, logits: np.ndarray, following: Sequence[int]) -> list[StepStats]:
        """Stats of each row of a (rows, vocab) matrix; row i is followed by following[i].
        Taken ROW_SCRATCH_BYTES at a time, so the scratch stays small whatever the batch."""
        step = max(1, ROW_SCRATCH_BYTES // (4 * self.n_vocab))
        out: list[StepStats] = []
        for start in range(0, logits.shape[0], step):
            out.extend(self._rows(logits[start:start + step], following[start:start + step]))
        return out

    def block(self, logits: np.ndarray) -> list[StepStats]:
        """Stats of each row of a (B, vocab) block in one vectorised pass, the following tokens not
        known yet (surprisal NaN): the rows of B sequences decoded together. Until the next call,
        :meth:`block_top` and :meth:`block_surprisal` read the same rows (for each sequence's
        sampler, and its surprisal once it has drawn)."""
        return self._rows(logits, None)

    def block_top(self, row: int, k: int) -> np.ndarray:
        """The k most likely tokens of row `row` of the last :meth:`block`."""
        return top_indices(self._rows_z[row], k)

    def block_surprisal(self, row: int, token: int) -> float:
        """Surprisal (bits) of `token` under row `row` of the last :meth:`block`."""
        return float(self._block_log_total[row] - self._rows_z[row, token]) / LN2

    def _rows(self, logits: np.ndarray, following: Sequence[int] | None) -> list[StepStats]:
        n = logits.shape[0]
        z, e = self._row_scratch(n)
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=z)
        np.exp(z, out=e)
        total = (e @ self._ones).astype(np.float64)
        log_total = np.log(total)
        self._block_log_total = log_total
        mean_z = np.einsum("ij,ij->i", e, z).astype(np.float64) / total
        eot = (e[:, self.eog].sum(axis=1, dtype=np.float64) / total) if self.eog.size else np.zeros(n)
        if following is None:
            surprisal = np.full(n, math.nan)
        else:
            surprisal = (log_total - z[np.arange(n), np.asarray(following, dtype=np.intp)]) / LN2
        top = np.stack([top_indices(row, self.top_k) for row in z])
        top_p = np.take_along_axis(e, top, axis=1).astype(np.float64) / total[:, None]
        np.multiply(e, z, out=e)  # e is free from here: e * z for the second moment
        second = np.einsum("ij,ij->i", e, z).astype(np.float64) / total
        var_bits2 = np.maximum(second - mean_z * mean_z, 0.0) / (LN2 * LN2)
        entropy = (log_total - mean_z) / LN2
        return [StepStats(max(float(entropy[i]), 0.0), float(surprisal[i]), float(eot[i]),
                          tuple(int(t) for t in top[i]), tuple(float(p) for p in top_p[i]),
                          float(var_bits2[i]))
                for i in range(n)]


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
