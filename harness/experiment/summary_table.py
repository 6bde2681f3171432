"""The summary as text: a plain table for the terminal and a Markdown table for documents.

Every row names the conversations its intervals rest on; a row resting on fewer than
FEW_CONVERSATIONS is marked ``*`` (its interval is honest, and wide), one resting on a single
conversation's turns ``t`` (the interval is about that conversation only).
"""

from __future__ import annotations

from harness.experiment.summary import SummaryRow
from harness.stats.intervals import FEW_CONVERSATIONS, NONE, T_TURNS, Interval

LEGEND = ("model H = entropy of the model's distribution at T=1; sampled H = entropy of the distribution "
          "drawn from (generated tokens only); typ = mean |surprisal - entropy|; intervals: 95% Student-t on "
          "conversation means (df = conversations - 1); conv = conversations, * fewer than "
          f"{FEW_CONVERSATIONS}, t one conversation (interval over its turns); ECE (null) = ECE of prompt rows and "
          "a perfectly calibrated model's expected ECE at the same confidences (generated rows: the sampler's, "
          "not shown); dist-2 / EAD-2 = distinct / expectation-adjusted distinct word bigrams across the seeds "
          "of a conversation")


def conversations_cell(row: SummaryRow) -> str:
    """`12`, `3*` (fewer than FEW_CONVERSATIONS) or `1t*` (one conversation's turns)."""
    mark = "t" if row.method in (T_TURNS, NONE) else ""
    return f"{row.conversations}{mark}{'*' if row.conversations < FEW_CONVERSATIONS else ''}"


def _cell(ci: Interval | None, width: int = 19) -> str:
    if ci is None:
        return f"{'-':>{width}}"
    if ci.low is None or ci.high is None:
        return f"{ci.mean:6.3f} [   -  ,   -  ]".rjust(width)
    return f"{ci.mean:6.3f} [{ci.low:5.2f},{ci.high:5.2f}]".rjust(width)


def _ece(row: SummaryRow) -> str:
    cal = row.calibration or {}
    if cal.get("ece") is None or cal.get("measures") == "sampler":
        return "-"
    return f"{cal['ece']:.3f} ({cal['ece_null']:.3f})"


def _diversity(row: SummaryRow, key: str) -> str:
    value = (row.diversity or {}).get(key) if row.scope == "generated" else None
    return f"{value:.3f}" if value is not None else "-"


def _past_eos(row: SummaryRow) -> str:
    """`cont 3 new 8`: past-eos turns that continued the conversation / started a new one."""
    p = row.past_eos
    return f"cont {p['continues']} new {p['new_conversation']}" if p else "-"


def _mean(row: SummaryRow, metric: str, fmt: str) -> str:
    value = row.mean(metric)
    return format(value, fmt) if value is not None else "-"


def format_table(rows: list[SummaryRow]) -> str:
    """A plain-text table: model entropy and sampling entropy in separate columns."""
    if not rows:
        return "no finished cells"
    width = max(len("condition"), *(len(r.condition) for r in rows))
    head = (f"{'condition':{width}}  {'scope':9} {'role':9} {'conv':>5} {'turns':>5} {'tokens':>6}  "
            f"{'model H bits [95% CI]':>19}  {'surprisal [95% CI]':>19}  {'ppl':>7}  "
            f"{'sampled H [95% CI]':>19}  {'typ':>5}  {'varent':>6}  {'ECE (null)':>13}  {'dist-2':>6}  "
            f"{'EAD-2':>6}  {'past EOS':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        sur = r.intervals["surprisal_bits"]
        lines.append(
            f"{r.condition:{width}}  {r.scope:9} {r.role:9} {conversations_cell(r):>5} {r.turns:5d} {r.tokens:6d}  "
            f"{_cell(r.intervals['entropy_bits'])}  {_cell(sur)}  "
            f"{(f'{2.0 ** sur.mean:7.2f}' if sur else '-'.rjust(7))}  "
            f"{_cell(r.intervals['sampling_entropy_bits'])}  {_mean(r, 'typicality_bits', '5.2f'):>5}  "
            f"{_mean(r, 'varentropy_bits2', '6.2f'):>6}  {_ece(r):>13}  {_diversity(r, 'distinct_2'):>6}  "
            f"{_diversity(r, 'ead_2'):>6}  {_past_eos(r):>13}")
    bounded = [r for r in rows if r.entropy_bounds is not None]
    if bounded:  # a server's top-k statistics: the model H above is a point estimate inside these
        lines += ["", "model H from a server's top-k: each mean lies within the mean of its tokens' bounds"]
        lines += [f"{r.condition:{width}}  {r.scope:9} {r.role:9} [{r.entropy_bounds[0]:.3f}, "
                  f"{r.entropy_bounds[1]:.3f}] bits" for r in bounded if r.entropy_bounds is not None]
    return "\n".join(lines)


def _md_interval(ci: Interval | None) -> str:
    if ci is None:
        return "–"
    if ci.low is None or ci.high is None:
        return f"{ci.mean:.3f}"
    return f"{ci.mean:.3f} [{ci.low:.2f}, {ci.high:.2f}]"


def format_markdown(rows: list[SummaryRow]) -> str:
    """The same rows as a Markdown table (fewer columns: the ones a results page reads)."""
    if not rows:
        return "no finished cells"
    head = ["condition", "scope", "role", "conv", "tokens", "model H bits [95% CI]", "surprisal [95% CI]",
            "typ", "ECE (null)", "dist-2", "EAD-2", "past EOS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.condition.replace("|", "\\|"), r.scope, r.role, conversations_cell(r), str(r.tokens),
                 _md_interval(r.intervals["entropy_bits"]), _md_interval(r.intervals["surprisal_bits"]),
                 _mean(r, "typicality_bits", ".2f"), _ece(r), _diversity(r, "distinct_2"),
                 _diversity(r, "ead_2"), _past_eos(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
