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

import numpy as np

from harness.stats.intervals import Interval

DEFAULT_REPLICATES = 2000
DEFAULT_SEED = 20240601
BOOTSTRAP_TURNS = "bootstrap-turns"  # percentile bootstrap over clusters (turns)
BOOTSTRAP_NESTED = "bootstrap-conversations-turns"  # conversations, then turns within them
_BLOCK = 256  # replicates drawn per block (bounds the index matrix at 256 x clusters)


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
        return Interval(mean, mean, mean, 1, int(c.sum()), BOOTSTRAP_TURNS)
    rng = np.random.default_rng(seed)
    estimates = np.empty(replicates, dtype=np.float64)
    for start in range(0, replicates, _BLOCK):
        rows = min(_BLOCK, replicates - start)
        idx = rng.integers(0, n, size=(rows, n))
        estimates[start:start + rows] = s[idx].sum(axis=1) / c[idx].sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return Interval(mean, float(low), float(high), n, int(c.sum()), BOOTSTRAP_TURNS)


def _nested_index(rng: np.random.Generator, starts: np.ndarray, sizes: np.ndarray,
                  rows: int) -> tuple[np.ndarray, np.ndarray]:
    """For `rows` replicates: draw groups with replacement, then members within each drawn group
    with replacement. Returns (replicate of each draw, member index of each draw), flattened."""
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
    interval (in distribution); `clusters` counts clusters, as there. It still covers too
    rarely at few conversations (bench/coverage.py); the summary uses
    harness.stats.intervals instead, and this stays as the baseline the bench measures.
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
        return Interval(mean, mean, mean, 1, int(c.sum()), BOOTSTRAP_NESTED, 1)
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
    return Interval(mean, float(low), float(high), int(s.size), int(c.sum()), BOOTSTRAP_NESTED,
                    int(starts.size))
