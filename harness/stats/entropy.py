"""Entropy math over next-token distributions (numpy, and the compiled per-row kernel
harness/stats/_rowstats.c; units in every name).

All statistics describe the model's own distribution at temperature 1, before any sampling
setting or bias: entropy of the full next-token distribution, surprisal of the token that came,
total probability of the end-of-generation tokens, and the top alternatives. Logits are used
through views; per token only O(vocab) float32 scratch is touched, reused between calls. A
statistic depends only on its row of logits: never on the rows computed beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

try:
    from harness.stats import _rowstats
except ImportError as exc:  # a checkout used without installing it
    raise ImportError("harness's statistics kernel (harness/stats/_rowstats.c) is not compiled: "
                      "install harness (./dev setup, or pip install -e .)") from exc

LN2 = math.log(2.0)
BLOCK = _rowstats.BLOCK  # entries per block maximum
_IN_BLOCK = np.arange(BLOCK)
_ROWS_PER_THREAD = 2  # fewer rows than this per thread are computed in the caller's thread


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


def top_indices(z: np.ndarray, k: int, block_max: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k largest entries of `z`, largest first, ties by lowest index.

    Exact. With `block_max` (the maximum of each run of BLOCK entries, as the kernel leaves it),
    only the blocks whose maximum reaches the k-th largest block maximum are searched: an entry
    outside them is below k block maxima, so it cannot be among the k largest.
    """
    n = z.shape[0]
    k = min(k, n)
    if block_max is not None and 4 * k <= block_max.shape[0]:
        if 1 <= k <= _rowstats.TOP_MAX:
            return np.array(_rowstats.top(z, block_max, k), dtype=np.intp)
        blocks = np.flatnonzero(block_max >= np.partition(block_max, -k)[-k])
        idx = (blocks[:, None] * BLOCK + _IN_BLOCK).ravel()
        idx = idx[idx < n]
    else:
        idx = np.arange(n)
    values = z[idx]
    if k < idx.size:  # keep every entry equal to the k-th largest, so that ties go to the lowest index
        keep = values >= values[np.argpartition(values, -k)[-k:]].min()
        idx, values = idx[keep], values[keep]
    return idx[np.argsort(-values, kind="stable")[:k]]


class StatsWorkspace:
    """Per-token statistics of logits rows, with preallocated scratch (one per vocabulary size).

    Every row, whether it comes alone (a generation step), in a prompt's batch or in a block of
    sequences decoded together, goes through the same one-row kernel (:meth:`_row`, the compiled
    ``_rowstats.row``), so a token's statistics cannot depend on how many rows were computed with
    it. The kernel makes two passes over the row: block maxima, then logits - max, exp and the sums
    of e, e*z and e*z*z, added in a fixed order (16 lanes of single-precision partial sums per block
    of 128, double across blocks): within 2e-7 bits of a float64 recomputation on Gemma-3's 262k
    vocabulary (bench/stats_kernel.py).

    Rows computed together (a prompt's batch, a block of sequences) are shared among `threads`
    threads, each with its own scratch: the kernel releases the GIL, so scoring uses the cores
    llama.cpp used for the decode. Which thread computes a row changes none of its numbers.
    """

    def __init__(self, n_vocab: int, eog_ids: Iterable[int], top_k: int = 5, threads: int = 1):
        self.n_vocab = n_vocab
        self.eog = np.array(sorted(set(eog_ids)), dtype=np.intp)
        self.top_k = top_k
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._blocks = -(-n_vocab // BLOCK)
        self._z = np.empty((1, n_vocab), dtype=np.float32)  # logits - max, one row per block row
        self._block_max = np.empty((1, self._blocks), dtype=np.float32)
        self._log_total = np.zeros(1)

    def _scratch(self, n: int) -> None:
        if self._z.shape[0] < n:
            self._z = np.empty((n, self.n_vocab), dtype=np.float32)
            self._block_max = np.empty((n, self._blocks), dtype=np.float32)
            self._log_total = np.zeros(n)

    def _row(self, logits: np.ndarray, slot: int, token: int | None = None) -> StepStats:
        """The statistics of one row followed by `token` (None: not known yet, surprisal NaN),
        leaving logits - max in scratch `slot`."""
        z, block_max = self._z[slot], self._block_max[slot]
        row = np.ascontiguousarray(logits, dtype=np.float32)
        _, total, sum_ez, sum_ez2 = _rowstats.row(row, z, block_max)
        log_total = math.log(total)
        self._log_total[slot] = log_total
        eot = float(np.exp(z[self.eog].astype(np.float64)).sum()) / total if self.eog.size else 0.0
        top = top_indices(z, self.top_k, block_max)
        top_p = tuple(math.exp(float(z[i])) / total for i in top)
        mean_z = sum_ez / total  # E[z] in nats
        var_z = max(sum_ez2 / total - mean_z * mean_z, 0.0)  # nats squared
        entropy = (log_total - mean_z) / LN2
        surprisal = math.nan if token is None else (log_total - float(z[token])) / LN2
        return StepStats(max(entropy, 0.0), surprisal, eot, tuple(int(i) for i in top), top_p,
                         var_z / (LN2 * LN2))

    def step(self, logits: np.ndarray, token: int | None) -> StepStats:
        """Stats of one row of logits; `token` is the one that followed (None: not yet known).
        Until the next call, :meth:`raw_top` and :meth:`surprisal_after_step` read this row."""
        return self._row(logits, 0, token)

    def raw_top(self, k: int) -> np.ndarray:
        """The k most likely tokens of the row last passed to :meth:`step` (for the sampler)."""
        return top_indices(self._z[0], k, self._block_max[0])

    def surprisal_after_step(self, token: int) -> float:
        """Surprisal (bits) of `token` under the row most recently passed to :meth:`step`."""
        return self.block_surprisal(0, token)

    def rows(self, logits: np.ndarray, following: Sequence[int]) -> list[StepStats]:
        """Stats of each row of a (rows, vocab) matrix; row i is followed by following[i]."""
        if len(following) != logits.shape[0]:
            raise ValueError(f"{logits.shape[0]} rows but {len(following)} following tokens")

        def part(start: int, stop: int, worker: int) -> list[StepStats]:
            return [self._row(logits[i], worker, following[i]) for i in range(start, stop)]

        return self._shared(len(following), part, slots=False)

    def block(self, logits: np.ndarray) -> list[StepStats]:
        """Stats of each row of a (B, vocab) block, the following tokens not known yet (surprisal
        NaN): the rows of B sequences decoded together. Until the next call, :meth:`block_top`
        and :meth:`block_surprisal` read the same rows (for each sequence's sampler, and its
        surprisal once it has drawn)."""
        self._scratch(logits.shape[0])
        return self._shared(logits.shape[0],
                            lambda start, stop, _: [self._row(logits[i], i) for i in range(start, stop)],
                            slots=True)

    def _shared(self, count: int, part: Callable[[int, int, int], list[StepStats]], *,
                slots: bool) -> list[StepStats]:
        """part(start, stop, worker) over `count` rows, in contiguous shares among the threads
        (`slots`: each row has its own scratch already; else worker w uses scratch w)."""
        workers = min(self.threads, count // _ROWS_PER_THREAD) or 1
        if workers == 1:
            return part(0, count, 0)
        if not slots:
            self._scratch(workers)
        if self._pool is None:  # kept for the workspace's life: a step must not start threads
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="harness-stats")
        bounds = [count * w // workers for w in range(workers + 1)]
        shares = list(self._pool.map(part, bounds[:-1], bounds[1:], range(workers)))
        return [stats for share in shares for stats in share]

    def block_top(self, row: int, k: int) -> np.ndarray:
        """The k most likely tokens of row `row` of the last :meth:`block`."""
        return top_indices(self._z[row], k, self._block_max[row])

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
