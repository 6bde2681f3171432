"""Token-level calibration: is the model's top-1 probability the rate at which it is right?

For every distribution that predicted a token, confidence = its top-1 probability and correct =
the token that came was that top-1. Ten equal-width confidence bins over [0, 1] (the last one
closed); expected calibration error ECE = sum_b n_b / N * |accuracy_b - confidence_b|
= sum_b |hits_b - confidence sum_b| / N, a number in [0, 1] (0: perfectly calibrated).

ECE is biased upward: a perfectly calibrated model shows a positive ECE from noise alone, the
more so the fewer the tokens. So beside it:

- ``ece_null``: the expected ECE of a perfectly calibrated model with exactly these confidences
  (each token right with probability its confidence), by simulation with a fixed seed, and
  ``ece_null_p95``, its 95th percentile: an ECE below that is indistinguishable from perfect;
- ``ece_ci95``: a bootstrap over units (conversations, turns, items, or blocks of consecutive
  tokens: tokens of one text are not independent), the percentile interval shifted by the
  bootstrap's own median bias so that it is about this ECE (it always holds it), clipped to [0, 1];
- ``brier``: the top-label Brier score, mean (confidence - correct)^2;
- ``confidence_minus_accuracy`` (> 0: over-confident) with a t interval over the same units.

Pure numpy; no model, no records.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats.intervals import ratio_t_interval

N_BINS = 10
NULL_REPLICATES = 1000
BOOT_REPLICATES = 1000
SEED = 20240601
BLOCK_TOKENS = 16  # the unit resampled when no larger unit is known
MODEL, SAMPLER = "model", "sampler"  # what a row's calibration measures (generated rows: the sampler's)
_DRAWS = 4_000_000  # uniforms drawn per block of null replicates (bounds memory)


@dataclass(frozen=True)
class Bin:
    lo: float
    hi: float
    n: int
    confidence: float | None  # mean top-1 probability in the bin (None: empty)
    accuracy: float | None  # fraction of the bin's tokens that were the top-1

    def to_dict(self) -> dict[str, float | int | None]:
        return {"lo": self.lo, "hi": self.hi, "n": self.n,
                "confidence": _r(self.confidence), "accuracy": _r(self.accuracy)}


@dataclass(frozen=True)
class Calibration:
    ece: float | None  # None when nothing was scored
    n: int
    bins: tuple[Bin, ...]
    brier: float | None = None
    confidence: float | None = None  # mean top-1 probability
    accuracy: float | None = None
    ece_null: float | None = None
    ece_null_p95: float | None = None
    ece_ci95: tuple[float, float] | None = None
    gap_ci95: tuple[float, float] | None = None  # of confidence - accuracy
    unit: str = "token blocks"
    units: int = 0
    measures: str = MODEL

    def to_dict(self) -> dict[str, object]:
        gap = None if self.confidence is None or self.accuracy is None else self.confidence - self.accuracy
        return {"ece": _r(self.ece), "n": self.n, "bins": [b.to_dict() for b in self.bins],
                "brier": _r(self.brier), "confidence": _r(self.confidence), "accuracy": _r(self.accuracy),
                "ece_null": _r(self.ece_null), "ece_null_p95": _r(self.ece_null_p95),
                "ece_ci95": _pair(self.ece_ci95), "confidence_minus_accuracy": _r(gap),
                "confidence_minus_accuracy_ci95": _pair(self.gap_ci95),
                "resampled": {"unit": self.unit, "units": self.units}, "measures": self.measures}


def _r(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def _pair(p: tuple[float, float] | None) -> list[float | None] | None:
    return None if p is None else [_r(p[0]), _r(p[1])]


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The equal-width bin of each confidence: [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]."""
    return np.minimum((np.asarray(confidence, dtype=np.float64) * n_bins).astype(np.intp), n_bins - 1)


def token_blocks(n: int, size: int = BLOCK_TOKENS) -> np.ndarray:
    """Unit ids of consecutive blocks of `size` tokens (the last block may be shorter)."""
    return np.arange(n) // size


def calibration(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS, *,
                units: Sequence[Hashable] | None = None, unit: str = "token blocks",
                measures: str = MODEL, seed: int = SEED) -> Calibration:
    """Reliability bins, ECE and its floor and interval of (top-1 probability, was-it-right)
    pairs. `units`: the unit of each token for the intervals (default: blocks of 16 consecutive
    tokens), named `unit`."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    idx = bin_index(conf, n_bins)
    n = int(conf.size)
    bins = []
    for b in range(n_bins):
        mine = idx == b
        count = int(mine.sum())
        lo, hi = b / n_bins, (b + 1) / n_bins
        bins.append(Bin(lo, hi, count, float(conf[mine].mean()), float(hit[mine].mean())) if count
                    else Bin(lo, hi, 0, None, None))
    if n == 0:
        return Calibration(None, 0, tuple(bins), unit=unit, measures=measures)
    ids = _unit_ids(units if units is not None else token_blocks(n))
    rng = np.random.default_rng(seed)
    null = ece_null_draws(conf, n_bins, rng)
    gap = ratio_t_interval(np.bincount(ids, conf - hit), np.bincount(ids))
    return Calibration(ece_of(conf, hit, n_bins), n, tuple(bins), float(((conf - hit) ** 2).mean()),
                       float(conf.mean()), float(hit.mean()), float(null.mean()), float(np.percentile(null, 95)),
                       ece_interval(conf, hit, ids, n_bins, rng), None if gap is None else (gap[1], gap[2]),
                       unit, int(ids.max()) + 1, measures)


def _unit_ids(units: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Units as dense ids 0..U-1 in order of first appearance."""
    seen: dict[Hashable, int] = {}
    return np.array([seen.setdefault(u, len(seen)) for u in np.asarray(units).tolist()], dtype=np.intp)


def ece_of(conf: np.ndarray, hit: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE = sum over bins of |hits - confidences| / N."""
    idx = bin_index(conf, n_bins)
    return float(np.abs(np.bincount(idx, hit, n_bins) - np.bincount(idx, conf, n_bins)).sum()) / conf.size


def ece_null_draws(conf: np.ndarray, n_bins: int = N_BINS, rng: np.random.Generator | None = None,
                   replicates: int = NULL_REPLICATES) -> np.ndarray:
    """ECE of `replicates` perfectly calibrated models with these confidences: each token right
    with probability its confidence (independently)."""
    rng = rng or np.random.default_rng(SEED)
    idx = bin_index(conf, n_bins)
    order = np.argsort(idx, kind="stable")
    sorted_conf, sorted_idx = conf[order], idx[order]
    present = np.flatnonzero(np.bincount(sorted_idx, minlength=n_bins))
    starts = np.searchsorted(sorted_idx, present)
    expected = np.bincount(idx, conf, n_bins)[present]
    out = np.empty(replicates, dtype=np.float64)
    rows = max(1, _DRAWS // max(conf.size, 1))
    for start in range(0, replicates, rows):
        k = min(rows, replicates - start)
        hits = (rng.random((k, conf.size)) < sorted_conf).astype(np.float32)  # counts stay exact below 2^24
        per_bin = np.add.reduceat(hits, starts, axis=1, dtype=np.float64)
        out[start:start + k] = np.abs(per_bin - expected).sum(axis=1) / conf.size
    return out


def ece_interval(conf: np.ndarray, hit: np.ndarray, ids: np.ndarray, n_bins: int = N_BINS,
                 rng: np.random.Generator | None = None, replicates: int = BOOT_REPLICATES,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Bootstrap over units: each replicate draws the units with replacement and recomputes the
    ECE from their per-bin totals; the percentile interval shifted by median(ECE*) - ECE (the
    bootstrap's own upward bias), clipped to [0, 1]. None with fewer than two units."""
    rng = rng or np.random.default_rng(SEED)
    n_units = int(ids.max()) + 1
    if n_units < 2:
        return None
    idx = bin_index(conf, n_bins)
    cell = ids * n_bins + idx
    size = n_units * n_bins
    totals = np.stack([np.bincount(cell, minlength=size), np.bincount(cell, hit, size),
                       np.bincount(cell, conf, size)]).reshape(3, n_units, n_bins)
    weights = np.stack([np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
                        for _ in range(replicates)]).astype(np.float64)  # replicates x units
    count = weights @ totals[0]
    stat = np.abs(weights @ totals[1] - weights @ totals[2]).sum(axis=1) / count.sum(axis=1)
    ece = ece_of(conf, hit, n_bins)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, med, hi = np.percentile(stat, [tail, 50.0, 100.0 - tail])
    shift = med - ece
    return max(0.0, float(lo - shift)), min(1.0, float(hi - shift))
