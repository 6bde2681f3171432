"""Per condition × scope × role summaries of an experiment, with bootstrap intervals.

A condition pools the seeds and conversations of one (model, template, mode, EOS policy,
sampling set): those are its replicates. Two kinds of entropy are kept apart:

- model entropy (``entropy_bits``): of the model's own next-token distribution at temperature 1,
  before any sampling setting — what the model "believes";
- sampling entropy (``sampling_entropy_bits``): of the distribution the token was actually drawn
  from, after top-k / top-p / min-p / temperature / biases — generated tokens only.

Intervals resample conversations, then turns within them (see harness.stats.bootstrap:
nested_mean_ci): the seeds of one conversation share its prompt and are not independent
evidence about the condition. Prompt tokens do not depend on seed, EOS
policy or sampling, so within a condition each distinct prompt is counted once: otherwise three
seeds would triple the same prompt and shrink its interval for nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.prompt.conversation import ATTRIBUTION_ROLES
from harness.stats.bootstrap import Interval, cluster_mean_ci, nested_mean_ci
from harness.stats.calibration import calibration
from harness.stats.diversity import METRICS as DIVERSITY_METRICS
from harness.stats.diversity import diversity
from harness.stats.refusal import refusal_rate

METRICS = ("entropy_bits", "surprisal_bits", "sampling_entropy_bits", "varentropy_bits2")
SCOPES = ("generated", "prompt")


@dataclass(frozen=True)
class TokenStat:
    """One stored token, reduced to what the summary needs."""

    condition: str
    turn: int
    prompt_key: str  # identical prompts share it
    scope: str
    role: str
    values: tuple[float | None, ...]  # in METRICS order; None where a token has no such statistic
    group: str = ""  # the conversation: the outer unit the intervals resample
    top1: tuple[float, bool] | None = None  # (top-1 probability, the token was the top-1): calibration
    entropy_bounds: tuple[float, float] | None = None  # a truncated token's [lo, hi] (hi may be inf)


@dataclass(frozen=True)
class SummaryRow:
    condition: str
    scope: str
    role: str
    turns: int
    tokens: int
    intervals: dict[str, Interval | None]
    diversity: dict[str, Any] | None = None  # the condition's, on generated rows
    calibration: dict[str, Any] | None = None  # ECE and reliability bins of the row's tokens
    past_eos: dict[str, int] | None = None  # past-eos conditions: turns per class (generated rows)
    refusal: dict[str, Any] | None = None  # the condition's refusal rate (generated rows)
    entropy_bounds: tuple[float, float] | None = None  # mean of the tokens' [lo, hi] (truncated rows)

    def mean(self, metric: str) -> float | None:
        ci = self.intervals.get(metric)
        return ci.mean if ci else None

    def to_dict(self) -> dict[str, Any]:
        """The report contract, plus turns and the other metrics' intervals."""
        ent, sur = self.intervals["entropy_bits"], self.intervals["surprisal_bits"]
        samp, var = self.intervals["sampling_entropy_bits"], self.intervals["varentropy_bits2"]
        return {
            "condition": self.condition, "scope": self.scope, "role": self.role, "tokens": self.tokens,
            "mean_entropy_bits": _r(ent.mean) if ent else None, "ci95": _ci(ent),
            "mean_surprisal_bits": _r(sur.mean) if sur else None,
            "perplexity": _r(2.0 ** sur.mean) if sur else None,
            "mean_sampling_entropy_bits": _r(samp.mean) if samp else None,
            "turns": self.turns, "surprisal_ci95": _ci(sur),
            "perplexity_ci95": [_r(2.0 ** sur.low), _r(2.0 ** sur.high)] if sur else None,
            "sampling_entropy_ci95": _ci(samp),
            "mean_varentropy_bits2": _r(var.mean) if var else None, "varentropy_ci95": _ci(var),
        } | ({"diversity": self.diversity} if self.diversity is not None and self.scope == "generated" else {}) \
          | ({"calibration": self.calibration} if self.calibration is not None else {}) \
          | ({"past_eos": self.past_eos} if self.past_eos is not None else {}) \
          | ({"refusal": self.refusal} if self.refusal is not None and self.scope == "generated" else {}) \
          | ({"entropy_bounds_bits": [_r(b) if math.isfinite(b) else None for b in self.entropy_bounds]}
             if self.entropy_bounds is not None else {})


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def _ci(interval: Interval | None) -> list[float] | None:
    return [_r(interval.low), _r(interval.high)] if interval else None


def role_order(role: str) -> tuple[int, str]:
    return (ATTRIBUTION_ROLES.index(role), "") if role in ATTRIBUTION_ROLES else (len(ATTRIBUTION_ROLES), role)


def summarize_tokens(tokens: Iterable[TokenStat], *, seed: int = 0) -> list[SummaryRow]:
    """Rows in order of first appearance of each condition, generated scope before prompt."""
    # (condition, scope, role) -> cluster -> per metric [sum, count]; plus token counts
    acc: dict[tuple[str, str, str], dict[Any, list[list[float]]]] = defaultdict(dict)
    group_of: dict[Any, str] = {}
    top1: dict[tuple[str, str, str], list[tuple[float, bool]]] = defaultdict(list)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    # per row: [Σ lo, Σ hi, tokens, truncated tokens] over tokens with an entropy (exact: lo = hi)
    bounds: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    owner: dict[tuple[str, str], int] = {}  # (condition, prompt_key) -> the turn that counts
    order: dict[str, int] = {}
    for t in tokens:
        order.setdefault(t.condition, len(order))
        cluster: Any = t.turn
        group_of[cluster] = t.group
        if t.scope == "prompt":
            first = owner.setdefault((t.condition, t.prompt_key), t.turn)
            if first != t.turn:
                continue
        key = (t.condition, t.scope, t.role)
        counts[key] += 1
        if t.top1 is not None:
            top1[key].append(t.top1)
        entropy = t.values[0]
        if entropy is not None:
            lo, hi = t.entropy_bounds or (entropy, entropy)
            b = bounds[key]
            b[0], b[1], b[2], b[3] = b[0] + lo, b[1] + hi, b[2] + 1, b[3] + (t.entropy_bounds is not None)
        sums = acc[key].setdefault(cluster, [[0.0, 0.0] for _ in METRICS])
        for slot, value in zip(sums, t.values, strict=True):
            if value is not None:
                slot[0] += value
                slot[1] += 1
    rows = []
    for key in sorted(acc, key=lambda k: (order[k[0]], SCOPES.index(k[1]) if k[1] in SCOPES else 9,
                                          role_order(k[2]))):
        clusters = list(acc[key].values())
        groups = [group_of[turn] for turn in acc[key]]
        intervals = {m: nested_mean_ci(groups, [c[i][0] for c in clusters], [c[i][1] for c in clusters],
                                       seed=seed)
                     for i, m in enumerate(METRICS)}
        cal = calibration([c for c, _ in top1[key]], [h for _, h in top1[key]]).to_dict() if top1[key] else None
        b = bounds[key]
        within = (b[0] / b[2], b[1] / b[2]) if b[3] else None  # a role mean's interval: the mean bounds
        rows.append(SummaryRow(key[0], key[1], key[2], len(clusters), counts[key], intervals, calibration=cal,
                               entropy_bounds=within))
    return rows


def condition_diversity(texts: Iterable[tuple[str, str, str]], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """(condition, conversation, text) triples -> per condition the `summary --json` diversity:
    each metric computed per conversation over its seeds' texts, then the plain mean over the
    conversations, with a bootstrap interval over conversations (``ci95``: metric -> [lo, hi])."""
    by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for condition, conversation, text in texts:
        by[condition][conversation].append(text)
    out = {}
    for condition, convs in by.items():
        per = [diversity(t).values for t in convs.values()]
        entry: dict[str, Any] = {}
        cis: dict[str, list[float] | None] = {}
        for i, metric in enumerate(DIVERSITY_METRICS):
            vals = [v[i] for v in per if v[i] is not None]
            ci = cluster_mean_ci(vals, [1.0] * len(vals), seed=seed) if vals else None
            entry[metric] = _r(ci.mean) if ci else None
            cis[metric] = _ci(ci)
        out[condition] = entry | {"conversations": len(convs), "ci95": cis}
    return out


def condition_refusals(texts: Iterable[tuple[str, str, str]], *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """(condition, conversation, text) triples -> per condition the refusal rate
    (harness.stats.refusal): per conversation over its seeds, then the plain mean over the
    conversations with a bootstrap interval over them."""
    by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for condition, conversation, text in texts:
        by[condition][conversation].append(text)
    out = {}
    for condition, convs in by.items():
        rates = [r for r in (refusal_rate(t) for t in convs.values()) if r is not None]
        ci = cluster_mean_ci(rates, [1.0] * len(rates), seed=seed)
        out[condition] = {"rate": _r(ci.mean) if ci else None, "ci95": _ci(ci), "conversations": len(convs)}
    return out


def _cell(ci: Interval | None, width: int = 19) -> str:
    if ci is None:
        return f"{'-':>{width}}"
    return f"{ci.mean:6.3f} [{ci.low:5.2f},{ci.high:5.2f}]".rjust(width)


def _ece(row: SummaryRow) -> str:
    ece = (row.calibration or {}).get("ece")
    return f"{ece:5.3f}" if ece is not None else "-".rjust(5)


def _distinct2(row: SummaryRow) -> str:
    d2 = (row.diversity or {}).get("distinct_2") if row.scope == "generated" else None
    return f"{d2:6.3f}" if d2 is not None else "-".rjust(6)


def _past_eos(row: SummaryRow) -> str:
    """`cont 3 new 8`: past-eos turns that continued the conversation / started a new one."""
    p = row.past_eos
    return f"cont {p['continues']} new {p['new_conversation']}" if p else "-"


def format_table(rows: list[SummaryRow]) -> str:
    """A plain-text table: model entropy and sampling entropy in separate columns; dist-2 is the
    condition's distinct-2 across seeds (generated rows)."""
    if not rows:
        return "no finished cells"
    width = max(len("condition"), *(len(r.condition) for r in rows))
    head = (f"{'condition':{width}}  {'scope':9} {'role':9} {'turns':>5} {'tokens':>6}  "
            f"{'model H bits [95% CI]':>19}  {'surprisal [95% CI]':>19}  {'ppl':>7}  "
            f"{'sampled H [95% CI]':>19}  {'varent':>6}  {'ECE':>5}  {'dist-2':>6}  {'past EOS':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sur = r.intervals["surprisal_bits"]
        var = r.mean("varentropy_bits2")
        lines.append(
            f"{r.condition:{width}}  {r.scope:9} {r.role:9} {r.turns:5d} {r.tokens:6d}  "
            f"{_cell(r.intervals['entropy_bits'])}  {_cell(sur)}  "
            f"{(f'{2.0 ** sur.mean:7.2f}' if sur else '-'.rjust(7))}  "
            f"{_cell(r.intervals['sampling_entropy_bits'])}  {(f'{var:6.2f}' if var is not None else '-'.rjust(6))}"
            f"  {_ece(r)}  {_distinct2(r)}  {_past_eos(r):>13}")
    bounded = [r for r in rows if r.entropy_bounds is not None]
    if bounded:  # a server's top-k statistics: the model H above is a point estimate inside these
        lines += ["", "model H from a server's top-k: each mean lies within the mean of its tokens' bounds"]
        lines += [f"{r.condition:{width}}  {r.scope:9} {r.role:9} [{r.entropy_bounds[0]:.3f}, "
                  f"{r.entropy_bounds[1]:.3f}] bits" for r in bounded if r.entropy_bounds is not None]
    return "\n".join(lines)
