"""Percentile bootstrap intervals for means, resampling whole clusters (numpy, seeded).

Tokens of one generated turn are not independent draws: a turn that wanders off-distribution
has high entropy at many tokens at once. Resampling tokens would treat 60 correlated tokens as
60 independent observations and give intervals that are too narrow. So the unit resampled is
the cluster (a turn): each replicate draws turns with replacement and recomputes the token
mean as sum / count over the drawn turns (a ratio estimator, so long turns weigh more, exactly
as in the point estimate). With one token per cluster this is the ordinary bootstrap of a mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_REPLICATES = 2000
DEFAULT_SEED = 20240601
_BLOCK = 256  # replicates drawn per block (bounds the index matrix at 256 x clusters)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    clusters: int
    count: int

    def to_list(self) -> list[float]:
        return [self.low, self.high]


def cluster_mean_ci(sums: Sequence[float], counts: Sequence[float], *, level: float = 0.95,
                    replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED) -> Interval | None:
    """Mean = sum(sums) / sum(counts) and its percentile interval over resampled clusters.

    Clusters with a zero count are dropped; None when nothing is left. With a single cluster
    the interval is the point (there is nothing to resample).
    """
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = c > 0
    s, c = s[keep], c[keep]
    if s.size == 0:
        return None
    mean = float(s.sum() / c.sum())
    n = s.size
    if n == 1:
        return Interval(mean, mean, mean, 1, int(c.sum()))
    rng = np.random.default_rng(seed)
    estimates = np.empty(replicates, dtype=np.float64)
    for start in range(0, replicates, _BLOCK):
        rows = min(_BLOCK, replicates - start)
        idx = rng.integers(0, n, size=(rows, n))
        estimates[start:start + rows] = s[idx].sum(axis=1) / c[idx].sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return Interval(mean, float(low), float(high), n, int(c.sum()))
