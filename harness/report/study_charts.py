"""Inline SVG for the study views of the report: reliability diagrams (calibration per condition
and role) and entropy / diversity against temperature for sweeps. Pure: summary rows (dicts) in,
SVG text out; every text that reaches the SVG goes through ``html.escape``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape
from typing import Any

from harness.report.charts import _f, nice_ceiling, role_colour

_SWEPT = re.compile(r"^(?P<base>.*?)(?: ?)T=(?P<t>[0-9.]+)$")  # the sampling-set names a sweep makes


def reliability_diagram(row: dict[str, Any], *, size: int = 150) -> str:
    """One row's calibration: per confidence bin a bar of accuracy (the role's colour), a tick at
    the mean confidence, the diagonal of perfect calibration; ECE, a perfectly calibrated model's
    ECE at the same confidences and n in the caption (generated rows: the sampler's)."""
    cal = row["calibration"]
    pad, bottom = 18, 30
    plot = size - pad - 6
    parts = [f'<svg class="chart rel" xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + bottom - pad}" '
             f'viewBox="0 0 {size} {size + bottom - pad}" role="img" aria-label="reliability diagram">',
             f'<rect x="{pad}" y="6" width="{plot}" height="{plot}" fill="#f7f7fb" stroke="#ccc"/>',
             f'<line x1="{pad}" y1="{6 + plot}" x2="{pad + plot}" y2="6" stroke="#999" stroke-dasharray="3 2"/>']
    colour = role_colour(str(row["role"]))
    for b in cal["bins"]:
        if not b["n"]:
            continue
        x = pad + plot * b["lo"]
        w = plot * (b["hi"] - b["lo"]) - 1
        h = plot * b["accuracy"]
        parts.append(f'<rect class="relbar" x="{_f(x)}" y="{_f(6 + plot - h)}" width="{_f(w)}" height="{_f(h)}" '
                     f'fill="{colour}" fill-opacity="0.75"><title>confidence {b["lo"]:g}–{b["hi"]:g}: n {b["n"]}, '
                     f'accuracy {b["accuracy"]:.3f}, mean confidence {b["confidence"]:.3f}</title></rect>')
        cy = 6 + plot - plot * b["confidence"]
        parts.append(f'<line x1="{_f(x)}" x2="{_f(x + w)}" y1="{_f(cy)}" y2="{_f(cy)}" stroke="#222"/>')
    ece, null = cal.get("ece"), cal.get("ece_null")
    floor = f" (perfect: {null:.3f})" if null is not None else ""
    whose = " (sampler)" if cal.get("measures") == "sampler" else ""
    caption = (f"{row.get('scope', '')} {row['role']}{whose}: ECE {ece:.3f}{floor}, n {cal['n']}"
               if ece is not None else "no tokens")
    parts.append(f'<text x="{pad}" y="{size + bottom - pad - 14}" font-size="9">{escape(caption)}</text>'
                 f'<text x="{pad}" y="{size + bottom - pad - 3}" font-size="8" fill="#555">'
                 "x: top-1 probability · y: accuracy</text></svg>")
    return "".join(parts)


def calibration_section(rows: Sequence[dict[str, Any]]) -> str:
    """Reliability diagrams grouped by condition (rows with calibration only)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if (r.get("calibration") or {}).get("n"):
            groups.setdefault(str(r["condition"]), []).append(r)
    if not groups:
        return '<p class="note">No token has a top-1 probability.</p>'
    return "".join(f'<div class="relgroup"><h3>{escape(c)}</h3>{"".join(map(reliability_diagram, g))}</div>'
                   for c, g in groups.items())


def choice_section(choices: Sequence[dict[str, Any]]) -> str:
    """Per multiple-choice condition: accuracy, letters' share and a reliability diagram."""
    out = []
    for c in choices:
        row = {"scope": "items", "role": "answers", "calibration": c["calibration"]}
        out.append(f'<div class="relgroup"><h3>{escape(str(c["condition"]))}</h3>'
                   f'<p class="meta">{c["items"]} items · accuracy {c["accuracy"]:.3f} · mean confidence '
                   f'{c["mean_confidence"]:.3f} · letters took {c["mean_letter_mass"]:.3f}</p>'
                   f"{reliability_diagram(row)}</div>")
    return "".join(out)


def sweep_series(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, dict[str, Any]]]]:
    """Generated summary rows of swept conditions (sampling set named `... T=v`), grouped by the
    rest of the condition, each series sorted by temperature; per condition the row of the role
    with the most tokens (the writer's)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("scope") == "generated" and r["tokens"] > best.get(r["condition"], {}).get("tokens", -1):
            best[r["condition"]] = r
    series: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for condition, r in best.items():
        head, _, sampling = condition.rpartition(" · ")
        m = _SWEPT.match(sampling)
        if m:
            name = f"{head} · {m['base']}".rstrip(" ·") if m["base"] else head
            series.setdefault(name, []).append((float(m["t"]), r))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in series.items() if len(v) > 1}


_PANELS = (("model H, bits", lambda r: r.get("mean_entropy_bits")),
           ("sampled H, bits", lambda r: r.get("mean_sampling_entropy_bits")),
           ("distinct-2 across seeds", lambda r: (r.get("diversity") or {}).get("distinct_2")))
_SERIES_COLOURS = ("#2b78c9", "#e05a33", "#23935a", "#7a5cc4", "#b36b12", "#444444")


def sweep_chart(rows: Sequence[dict[str, Any]], *, panel: int = 250, height: int = 170) -> str:
    """Three panels against temperature: model entropy, sampled entropy, distinct-2; one line per
    series (model · template · mode · EOS · base sampling set). Empty when nothing was swept."""
    series = sweep_series(rows)
    if not series:
        return ""
    temps = [t for s in series.values() for t, _ in s]
    t_lo, t_hi = min(temps), max(temps)
    left, top, bottom = 34, 16, 24
    width = panel * len(_PANELS)
    parts = [f'<svg class="chart sweep" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height + 14 * len(series)}" role="img" aria-label="entropy and diversity against temperature">']
    for p, (title, value) in enumerate(_PANELS):
        x0, plot_w, plot_h = p * panel + left, panel - left - 10, height - top - bottom
        ys = [value(r) for s in series.values() for _, r in s if value(r) is not None]
        y_max = nice_ceiling(max(ys, default=1.0))

        def sx(t: float, x0: float = x0, plot_w: float = plot_w) -> float:
            return x0 + plot_w * ((t - t_lo) / (t_hi - t_lo) if t_hi > t_lo else 0.5)

        def sy(v: float, y_max: float = y_max, plot_h: float = plot_h) -> float:
            return top + plot_h * (1 - min(max(v, 0.0), y_max) / y_max)

        parts.append(f'<rect x="{x0}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f7f7fb" stroke="#ddd"/>'
                     f'<text x="{x0}" y="{top - 4}" font-size="10" font-weight="bold">{escape(title)}</text>'
                     f'<text x="{x0 - 3}" y="{top + 3}" font-size="8" text-anchor="end">{y_max:g}</text>'
                     f'<text x="{x0 - 3}" y="{top + plot_h}" font-size="8" text-anchor="end">0</text>')
        for t in sorted(set(temps)):
            parts.append(f'<text x="{_f(sx(t))}" y="{top + plot_h + 11}" font-size="8" text-anchor="middle">T={t:g}</text>')
        for i, points in enumerate(series.values()):
            pts = [(sx(t), sy(value(r))) for t, r in points if value(r) is not None]
            colour = _SERIES_COLOURS[i % len(_SERIES_COLOURS)]
            if pts:
                parts.append(f'<polyline class="sweepline" fill="none" stroke="{colour}" stroke-width="1.5" '
                             f'points="{" ".join(f"{_f(x)},{_f(y)}" for x, y in pts)}"/>')
                parts += [f'<circle cx="{_f(x)}" cy="{_f(y)}" r="2.5" fill="{colour}"/>' for x, y in pts]
    for i, name in enumerate(series):
        colour = _SERIES_COLOURS[i % len(_SERIES_COLOURS)]
        parts.append(f'<text x="{left}" y="{height + 10 + 14 * i}" font-size="10" fill="{colour}">■ {escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
