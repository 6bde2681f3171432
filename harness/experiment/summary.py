"""Per condition × scope × role summaries of an experiment, with intervals over conversations.

A condition pools the seeds and conversations of one (model, template, mode, EOS policy,
sampling set). Two kinds of entropy are kept apart:

- model entropy (``entropy_bits``): of the model's own next-token distribution at temperature 1,
  before any sampling setting — what the model "believes";
- sampling entropy (``sampling_entropy_bits``): of the distribution the token was actually drawn
  from, after top-k / top-p / min-p / temperature / biases — generated tokens only.

Typicality (``typicality_bits`` = |surprisal - entropy|, per token) sits beside them: how far the
token that came was from what the distribution expected.

The conversation is the unit (harness.stats.intervals): a row's mean is the mean over its
conversations of each conversation's token-weighted mean, its interval Student's t on those
means (df = G - 1); every row says how many conversations G it rests on. The seeds of one
conversation share its prompt and are not independent evidence about the condition. Prompt
tokens do not depend on seed, EOS policy or sampling, so within a condition each distinct
prompt is counted once: otherwise three seeds would triple the same prompt for nothing.

Past-eos turns carry their class (harness.experiment.past_eos); their generated tokens are also
summarised per class, as conditions of their own labelled ``CONDITION · CLASS``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.prompt.conversation import ATTRIBUTION_ROLES
from harness.stats.calibration import SAMPLER, calibration, token_blocks
from harness.stats.diversity import METRICS as DIVERSITY_METRICS
from harness.stats.diversity import diversity, vocabulary_sizes
from harness.stats.intervals import Interval, conversation_mean_ci, t_interval_of_means
from harness.stats.refusal import refusal_rate

METRICS = ("entropy_bits", "surprisal_bits", "sampling_entropy_bits", "varentropy_bits2")  # stored per token
ALL_METRICS = (*METRICS, "typicality_bits")  # plus those derived from them
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
    group: str = ""  # the conversation: the unit the intervals rest on
    top1: tuple[float, bool] | None = None  # (top-1 probability, the token was the top-1): calibration
    subset: str = ""  # the turn's past-eos class ("" for other turns)
    entropy_bounds: tuple[float, float] | None = None  # a truncated token's [lo, hi] (hi may be inf)


def metric_values(t: TokenStat) -> tuple[float | None, ...]:
    """The token's values in ALL_METRICS order (the stored ones, then typicality)."""
    ent, sur = t.values[0], t.values[1]
    return (*t.values, abs(sur - ent) if ent is not None and sur is not None else None)


def labels_of(t: TokenStat) -> tuple[str, ...]:
    """The conditions a token counts in: its own, and for a past-eos turn's generated tokens its
    class's (``CONDITION · CLASS``)."""
    return (t.condition, f"{t.condition} · {t.subset}") if t.subset and t.scope == "generated" else (t.condition,)


@dataclass(frozen=True)
class SummaryRow:
    condition: str
    scope: str
    role: str
    turns: int
    tokens: int
    intervals: dict[str, Interval | None]
    conversations: int = 0
    diversity: dict[str, Any] | None = None  # the condition's, on generated rows
    calibration: dict[str, Any] | None = None  # ECE, its floor and interval, reliability bins
    past_eos: dict[str, int] | None = None  # past-eos conditions: turns per class (generated rows)
    refusal: dict[str, Any] | None = None  # the condition's refusal rate (generated rows)
    past_eos_class: str = ""  # a past-eos class's own row (its tokens are also in the condition's rows)
    entropy_bounds: tuple[float, float] | None = None  # mean of the tokens' [lo, hi] (truncated rows)

    def mean(self, metric: str) -> float | None:
        ci = self.intervals.get(metric)
        return ci.mean if ci else None

    @property
    def method(self) -> str:
        ci = self.intervals.get("entropy_bits")
        return ci.method if ci else "none"

    def to_dict(self) -> dict[str, Any]:
        """The report contract, plus turns, conversations, the interval method and the other
        metrics' intervals."""
        ent, sur = self.intervals["entropy_bits"], self.intervals["surprisal_bits"]
        samp, var = self.intervals["sampling_entropy_bits"], self.intervals["varentropy_bits2"]
        typ = self.intervals["typicality_bits"]
        return {
            "condition": self.condition, "scope": self.scope, "role": self.role, "tokens": self.tokens,
            "mean_entropy_bits": _r(ent.mean) if ent else None, "ci95": _ci(ent),
            "mean_surprisal_bits": _r(sur.mean) if sur else None,
            "perplexity": _r(2.0 ** sur.mean) if sur else None,
            "mean_sampling_entropy_bits": _r(samp.mean) if samp else None,
            "turns": self.turns, "conversations": self.conversations, "interval": self.method,
            "df": ent.df if ent else None, "surprisal_ci95": _ci(sur),
            "perplexity_ci95": [_r(2.0 ** v) for v in sur.to_list()] if sur and sur.to_list() else None,
            "sampling_entropy_ci95": _ci(samp),
            "mean_varentropy_bits2": _r(var.mean) if var else None, "varentropy_ci95": _ci(var),
            "mean_typicality_bits": _r(typ.mean) if typ else None, "typicality_ci95": _ci(typ),
        } | ({"diversity": self.diversity} if self.diversity is not None and self.scope == "generated" else {}) \
          | ({"calibration": self.calibration} if self.calibration is not None else {}) \
          | ({"past_eos": self.past_eos} if self.past_eos is not None else {}) \
          | ({"refusal": self.refusal} if self.refusal is not None and self.scope == "generated" else {}) \
          | ({"past_eos_class": self.past_eos_class} if self.past_eos_class else {}) \
          | ({"entropy_bounds_bits": [_r(b) if math.isfinite(b) else None for b in self.entropy_bounds]}
             if self.entropy_bounds is not None else {})


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def _ci(interval: Interval | None) -> list[float] | None:
    pair = interval.to_list() if interval else None
    return [_r(pair[0]), _r(pair[1])] if pair else None


def role_order(role: str) -> tuple[int, str]:
    return (ATTRIBUTION_ROLES.index(role), "") if role in ATTRIBUTION_ROLES else (len(ATTRIBUTION_ROLES), role)


def summarize_tokens(tokens: Iterable[TokenStat]) -> list[SummaryRow]:
    """Rows in order of first appearance of each condition: its generated rows, its past-eos
    classes' generated rows, then its prompt rows."""
    # (condition, scope, role) -> turn -> per metric [sum, count]; plus token counts
    acc: dict[tuple[str, str, str], dict[int, list[list[float]]]] = defaultdict(dict)
    group_of: dict[int, str] = {}
    top1: dict[tuple[str, str, str], list[tuple[float, bool, int]]] = defaultdict(list)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    # per row: [Σ lo, Σ hi, tokens, truncated tokens] over tokens with an entropy (exact: lo = hi)
    bounds: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    owner: dict[tuple[str, str], int] = {}  # (condition, prompt_key) -> the turn that counts
    order: dict[str, tuple[int, int]] = {}  # label -> (its condition's rank, 1 for a class row)
    classes: dict[str, str] = {}  # class row label -> its class
    for t in tokens:
        group_of[t.turn] = t.group
        if t.scope == "prompt" and owner.setdefault((t.condition, t.prompt_key), t.turn) != t.turn:
            continue
        values = metric_values(t)
        entropy = t.values[0]
        for k, label in enumerate(labels_of(t)):
            rank = order.setdefault(t.condition, (len(order), 0))[0]
            order.setdefault(label, (rank, k))
            if k:
                classes[label] = t.subset
            key = (label, t.scope, t.role)
            counts[key] += 1
            if t.top1 is not None:
                top1[key].append((*t.top1, t.turn))
            if entropy is not None:
                _add_bounds(bounds[key], entropy, t.entropy_bounds)
            sums = acc[key].setdefault(t.turn, [[0.0, 0.0] for _ in ALL_METRICS])
            for slot, value in zip(sums, values, strict=True):
                if value is not None:
                    slot[0] += value
                    slot[1] += 1
    rows = []
    for key in sorted(acc, key=lambda k: (order[k[0]][0], SCOPES.index(k[1]) if k[1] in SCOPES else 9,
                                          order[k[0]][1], k[0], role_order(k[2]))):
        turns = list(acc[key])
        groups = [group_of[turn] for turn in turns]
        intervals = {m: conversation_mean_ci(groups, [acc[key][t][i][0] for t in turns],
                                             [acc[key][t][i][1] for t in turns])
                     for i, m in enumerate(ALL_METRICS)}
        cal = _calibration(top1[key], group_of, key[1]) if top1[key] else None
        b = bounds[key]
        within = (b[0] / b[2], b[1] / b[2]) if b[3] else None  # a role mean's interval: the mean bounds
        rows.append(SummaryRow(key[0], key[1], key[2], len(turns), counts[key], intervals,
                               conversations=len(set(groups)), calibration=cal,
                               past_eos_class=classes.get(key[0], ""), entropy_bounds=within))
    return rows


def _add_bounds(b: list[float], entropy: float, bounds: tuple[float, float] | None) -> None:
    """Add a token to a row's [Σ lo, Σ hi, tokens, truncated tokens] (an exact one: lo = hi)."""
    lo, hi = bounds or (entropy, entropy)
    b[0], b[1], b[2], b[3] = b[0] + lo, b[1] + hi, b[2] + 1, b[3] + (bounds is not None)


def _calibration(pairs: list[tuple[float, bool, int]], group_of: dict[int, str], scope: str) -> dict[str, Any]:
    """A row's calibration; its intervals resample conversations (turns when there is one,
    blocks of tokens when there is one turn). Generated tokens were drawn by the sampler, not
    by the model: their accuracy depends on temperature and truncation, so they are labelled."""
    conversations = [group_of[turn] for _, _, turn in pairs]
    if len(set(conversations)) >= 2:
        units, unit = conversations, "conversations"
    elif len({turn for _, _, turn in pairs}) >= 2:
        units, unit = [turn for _, _, turn in pairs], "turns"
    else:
        units, unit = token_blocks(len(pairs)).tolist(), "token blocks"
    return calibration([c for c, _, _ in pairs], [h for _, h, _ in pairs], units=units, unit=unit,
                       **({"measures": SAMPLER} if scope == "generated" else {})).to_dict()


def _by_conversation(texts: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, list[str]]]:
    by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for condition, conversation, text in texts:
        by[condition][conversation].append(text)
    return by


def _over_conversations(values: list[float]) -> tuple[float | None, list[float] | None, str]:
    """(mean, ci95, method) of per-conversation values: Student's t, none below 2."""
    if not values:
        return None, None, "none"
    t = t_interval_of_means(values)
    if t is None:
        return _r(values[0]), None, "none"
    return _r(t[0]), [_r(t[1]), _r(t[2])], "t-conversations"


def condition_diversity(texts: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """(condition, conversation, text) triples -> per condition the `summary --json` diversity:
    each metric computed per conversation over its seeds' texts, then the plain mean over the
    conversations, with Student's t over conversations (``ci95``: metric -> [lo, hi]).
    Expectation-adjusted distinct-n takes the condition's own vocabulary (its distinct n-grams
    over all its texts)."""
    out = {}
    for condition, convs in _by_conversation(texts).items():
        vocab = vocabulary_sizes([t for ts in convs.values() for t in ts])
        per = [diversity(t, vocab).values for t in convs.values()]
        entry: dict[str, Any] = {}
        cis: dict[str, list[float] | None] = {}
        for i, metric in enumerate(DIVERSITY_METRICS):
            entry[metric], cis[metric], method = _over_conversations([v[i] for v in per if v[i] is not None])
        out[condition] = entry | {"conversations": len(convs), "interval": method, "ci95": cis}
    return out


def condition_refusals(texts: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """(condition, conversation, text) triples -> per condition the refusal rate
    (harness.stats.refusal): per conversation over its seeds, then the plain mean over the
    conversations with Student's t over them."""
    out = {}
    for condition, convs in _by_conversation(texts).items():
        rates = [r for r in (refusal_rate(t) for t in convs.values()) if r is not None]
        rate, ci, method = _over_conversations(rates)
        out[condition] = {"rate": rate, "ci95": ci, "conversations": len(convs), "interval": method}
    return out
