"""Token-level calibration: is the model's top-1 probability the rate at which it is right?

For every distribution that predicted a token, confidence = its top-1 probability and correct =
the token that came was that top-1. Ten equal-width confidence bins over [0, 1] (the last one
closed); expected calibration error ECE = sum_b n_b / N * |accuracy_b - confidence_b|, a number
in [0, 1] (0: perfectly calibrated). Pure numpy; no model, no records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_BINS = 10


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

    def to_dict(self) -> dict[str, object]:
        return {"ece": _r(self.ece), "n": self.n, "bins": [b.to_dict() for b in self.bins]}


def _r(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """The equal-width bin of each confidence: [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]."""
    return np.minimum((np.asarray(confidence, dtype=np.float64) * n_bins).astype(np.intp), n_bins - 1)


def calibration(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS) -> Calibration:
    """Reliability bins and ECE of (top-1 probability, was-it-right) pairs."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    idx = bin_index(conf, n_bins)
    n = int(conf.size)
    bins, ece = [], 0.0
    for b in range(n_bins):
        mine = idx == b
        count = int(mine.sum())
        lo, hi = b / n_bins, (b + 1) / n_bins
        if count == 0:
            bins.append(Bin(lo, hi, 0, None, None))
            continue
        c, a = float(conf[mine].mean()), float(hit[mine].mean())
        ece += count / n * abs(a - c)
        bins.append(Bin(lo, hi, count, c, a))
    return Calibration(ece if n else None, n, tuple(bins))
