"""`harness summary DB --compare A B`: two conditions' means per scope × role, and their difference.

Three means of one metric, each the mean over conversations of a per-conversation mean, with a
t interval of A - B (harness.stats.intervals.difference_ci: paired, Student's t on the
per-conversation differences, when both conditions ran the same conversations; Welch otherwise):

- token-weighted: within a conversation, sum over its tokens / tokens (the summary's mean);
- turn-weighted: within a conversation, the mean of per-turn means (a long degenerate loop
  counts as one turn);
- position-matched: token-weighted over the first k tokens of the role in each turn, so a
  condition whose turns run longer is not compared on tokens the other never reached.

Each difference carries the conversations it rests on, its method, and the conversations a run
would need to detect a difference of the size it saw (80 % power, 5 % two-sided) at the
per-conversation sd it saw. Prompt tokens count once per distinct prompt, as in the summary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from harness.errors import CommandError
from harness.experiment.summary import (
    ALL_METRICS,
    SCOPES,
    TokenStat,
    labels_of,
    metric_values,
    role_order,
)
from harness.prompt.conversation import ASSISTANT, USER
from harness.stats.intervals import FEW_CONVERSATIONS, difference_ci

DEFAULT_FIRST_K = 8


def resolve_condition(labels: Sequence[str], query: str) -> str:
    """A condition label: `query` exactly, or the one label containing it."""
    if query in labels:
        return query
    found = [label for label in labels if query in label]
    if len(found) == 1:
        return found[0]
    what = "matches no condition" if not found else f"matches {len(found)} conditions"
    raise CommandError(f"--compare {query!r} {what}",
                       hint="conditions: " + "; ".join(found or labels))


_SWAPPED = {USER: ASSISTANT, ASSISTANT: USER}


def _turn_sums(tokens: Iterable[TokenStat], conditions: set[str], metric: int, first_k: int,
               swapped: str | None = None) -> dict[tuple[str, str, str], dict[Any, list[Any]]]:
    """(condition, scope, role) -> turn -> [sum, count, first-k sum, first-k count, group, seen];
    the roles of condition `swapped` have user and assistant exchanged."""
    acc: dict[tuple[str, str, str], dict[Any, list[Any]]] = defaultdict(dict)
    owner: dict[tuple[str, str], int] = {}
    for t in tokens:
        mine = [label for label in labels_of(t) if label in conditions]
        if not mine:
            continue
        if t.scope == "prompt" and owner.setdefault((t.condition, t.prompt_key), t.turn) != t.turn:
            continue
        value = metric_values(t)[metric]
        for label in mine:
            role = _SWAPPED.get(t.role, t.role) if label == swapped else t.role
            slot = acc[(label, t.scope, role)].setdefault(t.turn, [0.0, 0, 0.0, 0, t.group, 0])
            slot[5] += 1  # tokens of this role seen in the turn, with or without the metric
            if value is None:
                continue
            slot[0] += value
            slot[1] += 1
            if slot[5] <= first_k:
                slot[2] += value
                slot[3] += 1
    return acc


def _columns(turns: Iterable[list[Any]], kind: str) -> tuple[list[Any], list[float], list[float]]:
    """(groups, sums, counts) of the turns that have the metric, for one kind of mean: token
    (sum / count), turn (each turn's mean counts once) or first (the first-k sums)."""
    turns = [t for t in turns if t[1]]
    groups = [t[4] for t in turns]
    if kind == "token":
        return groups, [t[0] for t in turns], [t[1] for t in turns]
    if kind == "turn":
        return groups, [t[0] / t[1] for t in turns], [1.0] * len(turns)
    return groups, [t[2] for t in turns], [t[3] for t in turns]


def compare_conditions(tokens: Iterable[TokenStat], a: str, b: str, *, metric: str = "entropy_bits",
                       first_k: int = DEFAULT_FIRST_K, swapped: bool = False) -> dict[str, Any]:
    """The `--compare` result: one row per (scope, role) both conditions have. `swapped`: B's
    user tokens are compared with A's assistant tokens and B's assistant with A's user (a
    `{score: swap_roles}` condition against `score`: the same text in the other role); rows
    are named by A's roles."""
    if metric not in ALL_METRICS:
        raise CommandError(f"unknown metric {metric!r}", hint="one of " + ", ".join(ALL_METRICS))
    if a == b:
        raise CommandError("--compare needs two different conditions")
    acc = _turn_sums(tokens, {a, b}, ALL_METRICS.index(metric), first_k, b if swapped else None)
    keys = sorted({(s, r) for (c, s, r) in acc if c == a} & {(s, r) for (c, s, r) in acc if c == b},
                  key=lambda k: (SCOPES.index(k[0]) if k[0] in SCOPES else 9, role_order(k[1])))
    rows = []
    for scope, role in keys:
        ta, tb = acc[(a, scope, role)].values(), acc[(b, scope, role)].values()

        row: dict[str, Any] = {"scope": scope, "role": role,
                               "turns": [sum(1 for t in ta if t[1]), sum(1 for t in tb if t[1])],
                               "tokens": [sum(t[1] for t in ta), sum(t[1] for t in tb)]}
        for kind, name in (("token", "token_weighted"), ("turn", "turn_weighted"), ("first", "first_k")):
            diff = difference_ci(_columns(ta, kind), _columns(tb, kind))
            row[name] = diff.to_dict() if diff else None
        rows.append(row)
    return {"a": a, "b": b, "metric": metric, "first_k": first_k, "swapped": swapped, "rows": rows}


def format_comparison(data: dict[str, Any]) -> str:
    """Plain text: per scope × role, A, B and A - B [95% CI] for the three means, the
    conversations each rests on, then one power line per row."""
    paired = any((r["token_weighted"] or {}).get("paired") for r in data["rows"])
    lines = [f"A = {data['a']}", f"B = {data['b']}" + (" (user and assistant swapped)" if data["swapped"] else ""),
             f"metric {data['metric']}; means over conversations of per-conversation means; A - B with 95% "
             f"{'paired Student-t on per-conversation differences over the conversations both have' if paired else 'Welch t on conversation means'}; "
             f"first-k = the first {data['first_k']} tokens of the role in each turn; "
             f"conv = conversations A/B, * fewer than {FEW_CONVERSATIONS}"]
    head = (f"{'scope':9} {'role':9} {'conv':>7} {'turns A/B':>9}  {'token-weighted A - B [95% CI]':>38}  "
            f"{'turn-weighted A - B [95% CI]':>38}  {'first-k A - B [95% CI]':>38}")
    lines += [head, "-" * len(head)]

    def cell(d: dict[str, Any] | None) -> str:
        if d is None:
            return "-".rjust(38)
        ci = "[   -   ,   -   ]" if d["ci95"] is None else f"[{d['ci95'][0]:+6.3f},{d['ci95'][1]:+6.3f}]"
        return f"{d['a']:6.3f} {d['b']:6.3f} {d['difference']:+7.3f} {ci}".rjust(38)

    power = []
    for r in data["rows"]:
        token = r["token_weighted"] or {}
        conv = token.get("conversations") or [0, 0]
        few = "*" if min(conv) < FEW_CONVERSATIONS else ""
        convs, turns = f"{conv[0]}/{conv[1]}{few}", f"{r['turns'][0]}/{r['turns'][1]}"
        lines.append(f"{r['scope']:9} {r['role']:9} {convs:>7} {turns:>9}  {cell(r['token_weighted'])}  "
                     f"{cell(r['turn_weighted'])}  {cell(r['first_k'])}")
        power.append(power_line(r["scope"], r["role"], token))
    return "\n".join(lines + [p for p in power if p])


def power_line(scope: str, role: str, d: dict[str, Any]) -> str | None:
    """How many conversations the observed sd implies for the observed (token-weighted) effect."""
    if not d or d.get("sd") is None:
        return None
    per = "" if d["paired"] else " per condition"
    needed = d.get("conversations_needed")
    want = f"about {needed} conversations{per}" if needed else "no finite number of conversations"
    return (f"power {scope} {role}: per-conversation sd {d['sd']:.3f} -> detecting {d['difference']:+.3f} with "
            f"80% power at 5% (two-sided) needs {want}; this run has {'/'.join(map(str, d['conversations']))}")
