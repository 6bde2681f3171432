"""Claims with verdicts: a list of comparisons and calibrations read from experiment databases.

A claims file (``experiments/claims.yaml``) lists claims, each resting on one experiment file:

- ``compare``: condition A against condition B (``--compare A B``, optionally ``--swapped``) for
  one metric, scope and role; ``expect`` is ``a<b``, ``a>b`` or ``differ``. The verdict reads
  the token-weighted difference's 95 % interval: ``supported`` when it excludes 0 on the
  expected side, ``contradicted`` on the other, ``not shown`` when it holds 0 (with the
  conversations the observed sd implies for the observed effect);
- ``calibration``: one condition's scope × role calibration; the verdict sets its ECE against
  ``ece_null_p95`` (a perfectly calibrated model with the same confidences stays below it 95 %
  of the time) and reads confidence - accuracy's interval (over- or under-confident).

Every verdict resting on fewer than FEW_CONVERSATIONS conversations says so. The schema is
strict, as for experiments. :func:`results_markdown` renders the rows as a document.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import ExperimentError
from harness.experiment.compare import compare_conditions, resolve_condition
from harness.experiment.db import run_info, summary, token_stats
from harness.experiment.schema import Schema
from harness.experiment.summary import ALL_METRICS, SummaryRow, labels_of
from harness.stats.intervals import FEW_CONVERSATIONS
from harness.yamlio import field_lines, load_yaml

COMPARE, CALIBRATION = "compare", "calibration"
EXPECT = ("a<b", "a>b", "differ")
_CLAIM: dict[str, tuple[type, ...]] = {
    "claim": (str,), "experiment": (str,), "kind": (str,), "a": (str,), "b": (str,), "swapped": (bool,),
    "metric": (str,), "scope": (str,), "role": (str,), "expect": (str,), "note": (str,)}


@dataclass(frozen=True)
class Claim:
    claim: str
    experiment: str  # the experiment file, relative to the claims file
    kind: str
    a: str
    scope: str
    role: str
    b: str = ""
    swapped: bool = False
    metric: str = "entropy_bits"
    expect: str = "differ"
    note: str = ""

    @property
    def stem(self) -> str:
        return Path(self.experiment).stem


def load_claims(path: str | Path) -> list[Claim]:
    """The claims of a claims file, checked (file:line: field ... on any error)."""
    text = Path(path).read_text(encoding="utf-8")
    data, node = load_yaml(text)
    schema = Schema(str(path), field_lines(node) if node is not None else {})
    schema.fields(data, "", {"claims": (list,)})
    out = []
    for i, entry in enumerate(data.get("claims") or []):
        where = f"claims[{i}]"
        entry = schema.fields(entry, where, _CLAIM)
        for key in ("claim", "experiment", "kind", "a", "scope", "role"):
            if key not in entry:
                raise schema.fail(where, f"a claim needs '{key}'")
        if entry["kind"] not in (COMPARE, CALIBRATION):
            raise schema.fail(f"{where}.kind", f"must be {COMPARE} or {CALIBRATION}")
        if entry["kind"] == COMPARE and "b" not in entry:
            raise schema.fail(where, "a comparison needs 'b'")
        if entry.get("expect", "differ") not in EXPECT:
            raise schema.fail(f"{where}.expect", f"must be one of {', '.join(EXPECT)}")
        if entry.get("metric", "entropy_bits") not in ALL_METRICS:
            raise schema.fail(f"{where}.metric", f"must be one of {', '.join(ALL_METRICS)}")
        out.append(Claim(**entry))
    if not out:
        raise ExperimentError("no claims", where=str(path), hint="list them under 'claims:'")
    return out


@dataclass(frozen=True)
class Result:
    claim: Claim
    run: dict[str, Any]  # id, created_at, updated_at, cells
    conversations: str  # "43" or "43/43"
    method: str
    measurement: str
    verdict: str


def evaluate(claim: Claim, conn: sqlite3.Connection, run_id: int) -> Result:
    """One claim read from its experiment's database (run `run_id`)."""
    info = run_info(conn, run_id)
    if claim.kind == CALIBRATION:
        return _calibration(claim, info, summary(conn, run_id))
    stats = token_stats(conn, run_id)
    labels = list(dict.fromkeys(label for t in stats for label in labels_of(t)))
    a, b = resolve_condition(labels, claim.a), resolve_condition(labels, claim.b)
    data = compare_conditions(stats, a, b, metric=claim.metric, swapped=claim.swapped)
    row = next((r for r in data["rows"] if (r["scope"], r["role"]) == (claim.scope, claim.role)), None)
    diff = (row or {}).get("token_weighted")
    if not diff:
        return Result(claim, info, "0", "none", "no tokens of this scope and role in both conditions",
                      "no data")
    conv, available = diff["conversations"], diff["conversations_available"]
    lo_hi = diff["ci95"]
    measured = (f"A {diff['a']:.3f}, B {diff['b']:.3f} bits; A − B **{diff['difference']:+.3f}** "
                + (f"[{lo_hi[0]:+.3f}, {lo_hi[1]:+.3f}]" if lo_hi else "(no interval)"))
    used = "/".join(map(str, conv)) if conv[0] != conv[1] else str(conv[0])
    if diff["paired"] and available != conv:
        used += f" (both of A's {available[0]} and B's {available[1]})"
    return Result(claim, info, used, diff["interval"], measured, compare_verdict(diff, claim.expect))


def compare_verdict(diff: dict[str, Any], expect: str) -> str:
    """The verdict of a `--compare` difference dict against the expected direction."""
    n = min(diff["conversations"])
    prefix = f"{n} conversation{'s' * (n != 1)}, too few to decide: " if n < FEW_CONVERSATIONS else ""
    if diff["ci95"] is None:
        return prefix + "no interval"
    lo, hi = diff["ci95"]
    side = "a>b" if lo > 0 else "a<b" if hi < 0 else None
    if side is None:
        needed = diff.get("conversations_needed")
        more = f"; ~{needed} conversations would detect {diff['difference']:+.3f}" if needed else ""
        return prefix + f"not shown (the interval holds 0{more})"
    if expect == "differ" or side == expect:
        return prefix + f"supported (A {'>' if side == 'a>b' else '<'} B)"
    return prefix + f"contradicted (A {'>' if side == 'a>b' else '<'} B)"


def _calibration(claim: Claim, info: dict[str, Any], rows: list[SummaryRow]) -> Result:
    condition = resolve_condition(list(dict.fromkeys(r.condition for r in rows)), claim.a)
    row = next((r for r in rows if r.condition == condition and (r.scope, r.role) == (claim.scope, claim.role)
                and r.calibration), None)
    if row is None:
        return Result(claim, info, "0", "none", "no such condition, scope and role", "no data")
    cal = row.calibration or {}
    return Result(claim, info, str(row.conversations), f"bootstrap over {cal['resampled']['unit']} (ECE), "
                  f"t ({row.method}) for confidence − accuracy", calibration_measurement(cal),
                  calibration_verdict(cal, row.conversations))


def _pair(values: list[float] | None, fmt: str) -> str:
    return "" if not values else f" [{values[0]:{fmt}}, {values[1]:{fmt}}]"


def calibration_measurement(cal: dict[str, Any]) -> str:
    """ECE with its interval beside its floor, confidence - accuracy with its interval, Brier."""
    return (f"ECE **{cal['ece']:.3f}**{_pair(cal.get('ece_ci95'), '.3f')} vs a perfectly calibrated model's "
            f"{cal['ece_null']:.3f} (95th percentile {cal['ece_null_p95']:.3f}), {cal['n']} tokens; "
            f"confidence − accuracy {cal['confidence_minus_accuracy']:+.3f}"
            f"{_pair(cal.get('confidence_minus_accuracy_ci95'), '+.3f')}; Brier {cal['brier']:.3f}")


def calibration_verdict(cal: dict[str, Any], conversations: int) -> str:
    """Beyond the floor or not, and which way confidence leans (if its interval says)."""
    prefix = (f"{conversations} conversation{'s' * (conversations != 1)}, too few to decide: "
              if conversations < FEW_CONVERSATIONS else "")
    beyond = cal["ece"] > cal["ece_null_p95"]
    lean = ""
    gap = cal.get("confidence_minus_accuracy_ci95")
    if gap and gap[0] > 0:
        lean = "; over-confident"
    elif gap and gap[1] < 0:
        lean = "; under-confident"
    return prefix + ("miscalibrated beyond the noise floor" if beyond
                     else "indistinguishable from perfect calibration") + lean


def _duration(info: dict[str, Any]) -> str:
    try:
        seconds = (datetime.fromisoformat(info["updated_at"]) - datetime.fromisoformat(info["created_at"])).total_seconds()
    except (TypeError, ValueError):
        return "?"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s" if seconds >= 60 else f"{seconds:.0f} s"


def results_markdown(results: list[Result], *, header: str, tables: dict[str, str]) -> str:
    """The claims table, then each experiment's summary table (Markdown)."""
    lines = [header, "", "| claim | experiment | run | conversations | interval | measurement | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        c = r.claim
        what = c.claim + (f" ({c.note})" if c.note else "")
        cells = r.run.get("cells", {})
        run = (f"run {r.run.get('id')}, {str(r.run.get('created_at', '?'))[:16].replace('T', ' ')} UTC, "
               f"{_duration(r.run)}, {cells.get('done', 0)}/{r.run.get('cells_total', '?')} cells")
        lines.append(f"| {what} | [`{c.experiment}`]({c.experiment}) | {run} | {r.conversations} | {r.method} | "
                     f"{r.measurement} | {r.verdict} |")
    for name, table in tables.items():
        lines += ["", f"### `{name}`", "", table]
    return "\n".join(lines) + "\n"
