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


def _nested_index(rng: np.random.Generator, starts: np.ndarray, sizes: np.ndarray,
                  rows: int, drawn: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For `rows` replicates: draw groups with replacement (or take `drawn`, rows x groups), then
    members within each drawn group with replacement. Returns (replicate of each draw, member
    index of each draw), flattened."""
    if drawn is None:
        drawn = rng.integers(0, starts.size, size=(rows, starts.size))
    lens = sizes[drawn].ravel()
    replicate = np.repeat(np.arange(rows), sizes[drawn].sum(axis=1))
    member = np.repeat(starts[drawn].ravel(), lens) + (rng.random(lens.sum()) * np.repeat(lens, lens)).astype(np.intp)
    return replicate, member


def _grouped(groups: Sequence[object], s: np.ndarray, c: np.ndarray):
    """Clusters reordered so each group's members are contiguous; (sums, counts, starts, sizes)."""
    order: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        order.setdefault(g, []).append(i)
    idx = np.array([i for members in order.values() for i in members], dtype=np.intp)
    sizes = np.array([len(m) for m in order.values()], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return s[idx], c[idx], starts, sizes


def nested_mean_ci(groups: Sequence[object], sums: Sequence[float], counts: Sequence[float], *,
                   level: float = 0.95, replicates: int = DEFAULT_REPLICATES,
                   seed: int = DEFAULT_SEED) -> Interval | None:
    """Mean = sum(sums) / sum(counts) with a two-stage percentile interval: each replicate draws
    groups (conversations) with replacement, then clusters (turns) within each drawn group.

    Turns of one conversation share its prompt: several seeds of one conversation are not
    independent evidence about the condition, so resampling turns alone is too narrow when
    there are few conversations. With one cluster per group this is :func:`cluster_mean_ci`'s
    interval (in distribution); `clusters` counts clusters, as there.
    """
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = c > 0
    kept_groups = [g for g, k in zip(groups, keep, strict=True) if k]
    s, c = s[keep], c[keep]
    if s.size == 0:
        return None
    mean = float(s.sum() / c.sum())
    if s.size == 1:
        return Interval(mean, mean, mean, 1, int(c.sum()))
    s, c, starts, sizes = _grouped(kept_groups, s, c)
    rng = np.random.default_rng(seed)
    estimates = np.empty(replicates, dtype=np.float64)
    for start in range(0, replicates, _BLOCK):
        rows = min(_BLOCK, replicates - start)
        replicate, member = _nested_index(rng, starts, sizes, rows)
        num = np.bincount(replicate, weights=s[member], minlength=rows)
        den = np.bincount(replicate, weights=c[member], minlength=rows)
        estimates[start:start + rows] = num / den
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return Interval(mean, float(low), float(high), int(s.size), int(c.sum()))


@dataclass(frozen=True)
class Difference:
    """mean_a - mean_b with its percentile interval."""

    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    paired: bool  # the same conversations were drawn for both sides

    def to_dict(self) -> dict[str, object]:
        def r(x: float) -> float:
            return float(f"{x:.6g}")

        return {"a": r(self.mean_a), "b": r(self.mean_b), "difference": r(self.difference),
                "ci95": [r(self.low), r(self.high)], "paired": self.paired}


def _side(groups: Sequence[object], sums: Sequence[float], counts: Sequence[float], order: list[object]):
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = c > 0
    rank = {g: i for i, g in enumerate(order)}
    idx = sorted((i for i in range(s.size) if keep[i]), key=lambda i: rank[groups[i]])
    sizes = np.array([sum(1 for i in idx if groups[i] == g) for g in order], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return s[idx], c[idx], starts, sizes


def difference_ci(a: tuple[Sequence[object], Sequence[float], Sequence[float]],
                  b: tuple[Sequence[object], Sequence[float], Sequence[float]], *, level: float = 0.95,
                  replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED) -> Difference | None:
    """Difference of two ratio means (groups, sums, counts each) with a conversation-then-turn
    bootstrap. When both sides hold the same groups (conversations), each replicate draws the
    groups once for both sides (paired: a conversation that is hard for A is hard for B too),
    then the turns of each side within them; otherwise the sides are resampled independently."""
    sides = []
    for groups, sums, counts in (a, b):
        kept = [g for g, c in zip(groups, counts, strict=True) if c > 0]
        sides.append((list(dict.fromkeys(kept)), groups, sums, counts))
    if not sides[0][0] or not sides[1][0]:
        return None
    paired = set(sides[0][0]) == set(sides[1][0])
    order_a = sides[0][0]
    data = [_side(g, s, c, order_a if paired else order) for order, g, s, c in sides]
    means = [float(s.sum() / c.sum()) for s, c, _, _ in data]
    rng = np.random.default_rng(seed)
    estimates = np.empty(replicates, dtype=np.float64)
    for start in range(0, replicates, _BLOCK):
        rows = min(_BLOCK, replicates - start)
        shared = rng.integers(0, len(order_a), size=(rows, len(order_a))) if paired else None
        est = []
        for s, c, starts, sizes in data:
            replicate, member = _nested_index(rng, starts, sizes, rows, shared)
            est.append(np.bincount(replicate, weights=s[member], minlength=rows)
                       / np.bincount(replicate, weights=c[member], minlength=rows))
        estimates[start:start + rows] = est[0] - est[1]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return Difference(means[0], means[1], means[0] - means[1], float(low), float(high), paired)
