"""Intervals that keep their 95 % at the numbers of conversations people run (numpy).

The conversation is the unit. A condition's mean is the plain mean of its conversations' means
(each conversation's own mean pools its tokens over its turns and seeds), and its interval is
Student's t on those conversation means with df = G - 1: exact when conversation means are
normal, and at G = 3 it is as wide as three conversations deserve (t = 4.30, not 1.96). A
bootstrap cannot do that: with three conversations it never reaches past the spread of three
numbers (bench/coverage.py measures it: about 80 % at G = 3).

With one conversation nothing can be said about conversations; when it has several turns (seeds)
the interval is the t interval of its token-weighted mean over turns (method ``t-turns``, a
statement about this conversation's turns only). With one turn there is no interval.

A difference of two conditions is paired over the conversations both have tokens in: Student's t
on the per-conversation differences. With fewer than two such conversations, Welch's t on the two
sets of conversation means.
:func:`conversations_needed` turns an observed sd into the conversations a future run needs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from harness.stats.student_t import normal_quantile, t_quantile

T_CONVERSATIONS = "t-conversations"  # Student-t on conversation means, df = G - 1
T_TURNS = "t-turns"  # one conversation: t over its turns (about this conversation only)
WELCH = "welch-conversations"  # unpaired difference: Welch's t on the two sets of conversation means
NONE = "none"  # one conversation with one turn: no interval
FEW_CONVERSATIONS = 10  # below this a row is marked: the interval is honest but wide
MIN_NEEDED = 3  # the fewest conversations a power line names


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float | None  # None: no interval (see `method`)
    high: float | None
    clusters: int  # the units the interval rests on (conversations, or turns for t-turns)
    count: int  # tokens (the sum of the counts)
    method: str = T_CONVERSATIONS
    conversations: int = 0
    df: float | None = None

    def to_list(self) -> list[float] | None:
        return None if self.low is None or self.high is None else [self.low, self.high]

    @property
    def width(self) -> float | None:
        return None if self.low is None or self.high is None else self.high - self.low


def _by_group(groups: Sequence[Hashable], sums: Sequence[float],
              counts: Sequence[float]) -> tuple[np.ndarray, np.ndarray, list[Hashable]]:
    """Per group (in order of first appearance) the summed sums and counts; groups whose counts
    sum to zero are dropped."""
    index: dict[Hashable, int] = {}
    s: list[float] = []
    c: list[float] = []
    for g, x, n in zip(groups, sums, counts, strict=True):
        if n <= 0:
            continue
        i = index.setdefault(g, len(s))
        if i == len(s):
            s.append(0.0)
            c.append(0.0)
        s[i] += float(x)
        c[i] += float(n)
    return np.asarray(s, dtype=np.float64), np.asarray(c, dtype=np.float64), list(index)


def t_interval_of_means(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float, float] | None:
    """(mean, low, high, standard error) of Student's t on `values` (df = n - 1); None for n < 2."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None
    mean = float(v.mean())
    se = float(v.std(ddof=1)) / math.sqrt(v.size)
    half = t_quantile(0.5 + level / 2.0, v.size - 1) * se
    return mean, mean - half, mean + half, se


def ratio_t_interval(sums: Sequence[float], counts: Sequence[float], *,
                     level: float = 0.95) -> tuple[float, float, float, float] | None:
    """(mean, low, high, standard error) of the ratio sum(sums) / sum(counts) over units with the
    linearised variance G / (G - 1) * sum((s - r c)^2) / (sum c)^2 and t with df = G - 1 (equal
    counts: exactly Student's t on the units' means). None for fewer than 2 units."""
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = c > 0
    s, c = s[keep], c[keep]
    if s.size < 2:
        return None
    total = float(c.sum())
    mean = float(s.sum()) / total
    g = s.size
    se = math.sqrt(g / (g - 1) * float(((s - mean * c) ** 2).sum())) / total
    half = t_quantile(0.5 + level / 2.0, g - 1) * se
    return mean, mean - half, mean + half, se


def conversation_mean_ci(groups: Sequence[Hashable], sums: Sequence[float], counts: Sequence[float], *,
                         level: float = 0.95) -> Interval | None:
    """The mean over conversations of each conversation's token-weighted mean, with Student's t
    on the conversation means. Inputs are per turn: its conversation, sum and count (a turn
    with count 0 is dropped). None when nothing is left."""
    s_g, c_g, _ = _by_group(groups, sums, counts)
    if s_g.size == 0:
        return None
    count = int(c_g.sum())
    if s_g.size >= 2:
        mean, low, high, _ = t_interval_of_means(s_g / c_g, level=level)  # type: ignore[misc]
        return Interval(mean, low, high, int(s_g.size), count, T_CONVERSATIONS, int(s_g.size), s_g.size - 1.0)
    turns = ratio_t_interval(sums, counts, level=level)
    mean = float(s_g[0] / c_g[0])
    if turns is None:
        return Interval(mean, None, None, 1, count, NONE, 1, None)
    kept = sum(1 for n in counts if n > 0)
    return Interval(mean, turns[1], turns[2], kept, count, T_TURNS, 1, kept - 1.0)


@dataclass(frozen=True)
class Difference:
    """mean_a - mean_b over conversations with its interval and what it rests on."""

    mean_a: float
    mean_b: float
    difference: float
    low: float | None
    high: float | None
    paired: bool  # t on per-conversation differences over the conversations both sides have
    conversations: tuple[int, int]  # the conversations each side's mean rests on (paired: the common ones)
    method: str
    df: float | None
    sd: float | None  # per-conversation sd of the difference (paired) or pooled per side (unpaired)
    available: tuple[int, int] = (0, 0)  # conversations with tokens on each side (before pairing)

    def needed(self, *, power: float = 0.8, level: float = 0.95) -> int | None:
        """Conversations (per condition) a run needs to detect this difference with `power`."""
        if self.sd is None:
            return None
        return conversations_needed(self.sd, self.difference, paired=self.paired, power=power, level=level)

    def to_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else float(f"{x:.6g}")

        ci = None if self.low is None or self.high is None else [r(self.low), r(self.high)]
        return {"a": r(self.mean_a), "b": r(self.mean_b), "difference": r(self.difference), "ci95": ci,
                "paired": self.paired, "conversations": list(self.conversations),
                "conversations_available": list(self.available), "interval": self.method,
                "df": r(self.df), "sd": r(self.sd), "conversations_needed": self.needed()}


Side = tuple[Sequence[Hashable], Sequence[float], Sequence[float]]  # (conversation, sum, count) per turn


def difference_ci(a: Side, b: Side, *, level: float = 0.95) -> Difference | None:
    """Difference of two conditions' conversation-level means. Paired when at least two
    conversations have tokens on both sides: Student's t on the per-conversation differences
    over those conversations (df = G - 1; a conversation only one side has is left out of both,
    so A and B are compared on the same conversations). Otherwise Welch's t with the
    Welch-Satterthwaite df (one conversation on a side: its turns stand in, as in
    :func:`conversation_mean_ci`)."""
    sa, ca, ga = _by_group(*a)
    sb, cb, gb = _by_group(*b)
    if sa.size == 0 or sb.size == 0:
        return None
    ma, mb = sa / ca, sb / cb
    index_b = {g: i for i, g in enumerate(gb)}
    common = [i for i, g in enumerate(ga) if g in index_b]
    if len(common) >= 2:
        pa, pb = ma[common], mb[[index_b[ga[i]] for i in common]]
        mean, low, high, se = t_interval_of_means(pa - pb, level=level)  # type: ignore[misc]
        return Difference(float(pa.mean()), float(pb.mean()), mean, low, high, True, (len(common), len(common)),
                          T_CONVERSATIONS, len(common) - 1.0, se * math.sqrt(len(common)), (ma.size, mb.size))
    sides = [_side_variance(m, side, level) for m, side in ((ma, a), (mb, b))]
    mean_a, mean_b = float(ma.mean()), float(mb.mean())
    if any(v is None for v in sides):
        return Difference(mean_a, mean_b, mean_a - mean_b, None, None, False, (ma.size, mb.size), NONE, None, None,
                          (ma.size, mb.size))
    (va, dfa, sda), (vb, dfb, sdb) = sides  # type: ignore[misc]
    df = (va + vb) ** 2 / (va ** 2 / dfa + vb ** 2 / dfb) if va + vb > 0 else dfa + dfb
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(va + vb)
    sd = math.sqrt((sda ** 2 + sdb ** 2) / 2.0)
    return Difference(mean_a, mean_b, mean_a - mean_b, mean_a - mean_b - half, mean_a - mean_b + half, False,
                      (ma.size, mb.size), WELCH, df, sd, (ma.size, mb.size))


def _side_variance(means: np.ndarray, side: Side, level: float) -> tuple[float, float, float] | None:
    """(variance of the side's mean, its df, its per-unit sd): conversations, or the turns of a
    single conversation."""
    if means.size >= 2:
        sd = float(means.std(ddof=1))
        return sd ** 2 / means.size, means.size - 1.0, sd
    turns = ratio_t_interval(side[1], side[2], level=level)
    if turns is None:
        return None
    units = sum(1 for n in side[2] if n > 0)
    return turns[3] ** 2, units - 1.0, turns[3] * math.sqrt(units)


def conversations_needed(sd: float, effect: float, *, paired: bool = True, power: float = 0.8,
                         level: float = 0.95, limit: int = 1_000_000) -> int | None:
    """The smallest n with n >= ((t_{(1+level)/2} + t_power) * sd / |effect|)^2 (paired: n
    conversations, df = n - 1; unpaired: n per condition, 2 sd^2 and df = 2n - 2), and at least
    MIN_NEEDED (the approximation is poor below, and a t interval on two means says little). None
    when the effect is zero or the answer exceeds `limit`."""
    if effect == 0 or not math.isfinite(effect):
        return None
    if sd <= 0:
        return MIN_NEEDED
    scale = (sd / abs(effect)) ** 2 * (1.0 if paired else 2.0)
    n = max(MIN_NEEDED, math.ceil((normal_quantile(0.5 + level / 2.0) + normal_quantile(power)) ** 2 * scale))
    for _ in range(100):
        df = n - 1.0 if paired else 2.0 * n - 2.0
        want = max(MIN_NEEDED, math.ceil((t_quantile(0.5 + level / 2.0, df) + t_quantile(power, df)) ** 2 * scale))
        if want > limit:
            return None
        if want == n:
            break
        n = want
    return n
