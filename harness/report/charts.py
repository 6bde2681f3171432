"""Inline SVG charts for the HTML report: entropy over token position, and mean entropy per
condition × role with 95% interval whiskers. Pure: values in, SVG text out.

Colours are decided here (entropy shading bins and role colours) so the page's legend, the
transcript and the charts agree. Every text that reaches the SVG goes through ``html.escape``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

# Entropy shading: a token whose model entropy is below BIN_EDGES_BITS[i] gets SHADES[i]; at or
# above the last edge it gets SHADES[-1]. Light (the model was sure) to dark red (it was not).
BIN_EDGES_BITS = (0.5, 1.0, 2.0, 3.0, 5.0)
SHADES = ("#fbf7e4", "#fae49a", "#f6c25c", "#f0913f", "#e05a33", "#b8202f")
NO_STATS_SHADE = "#e6e6e6"  # the first prompt token: nothing predicts it

ROLE_COLOURS = {"system": "#7a5cc4", "user": "#2b78c9", "assistant": "#23935a", "template": "#8c8c8c"}
OTHER_ROLE_COLOUR = "#b36b12"  # roles outside the four (e.g. `text` of score --text)

POSITION_BG = "#f8f8f4"  # background of entropy-over-position charts
CONDITION_BG = "#f3f5fa"  # background of the condition comparison chart


def shade_bin(entropy_bits: float | None) -> int | None:
    """Index into SHADES for an entropy in bits (None when the token has no statistics)."""
    if entropy_bits is None or math.isnan(entropy_bits):
        return None
    return next((i for i, edge in enumerate(BIN_EDGES_BITS) if entropy_bits < edge), len(BIN_EDGES_BITS))


def shade(entropy_bits: float | None) -> str:
    i = shade_bin(entropy_bits)
    return NO_STATS_SHADE if i is None else SHADES[i]


def bin_label(i: int) -> str:
    """`< 0.5`, `0.5–1`, ..., `≥ 5` (bits)."""
    if i == 0:
        return f"< {BIN_EDGES_BITS[0]:g}"
    if i == len(BIN_EDGES_BITS):
        return f"≥ {BIN_EDGES_BITS[-1]:g}"
    return f"{BIN_EDGES_BITS[i - 1]:g}–{BIN_EDGES_BITS[i]:g}"


def role_colour(role: str) -> str:
    return ROLE_COLOURS.get(role, OTHER_ROLE_COLOUR)


def role_class(role: str) -> str:
    """A CSS class for a role (roles are free strings; only [a-z0-9_-] survive)."""
    return "r-" + (re.sub(r"[^a-z0-9_-]", "_", role.lower()) or "_")


def nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= x (axis maxima); 1 for x <= 0."""
    if x <= 0 or math.isnan(x):
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= x * (1 - 1e-9))


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Point:
    """One token on the position chart."""

    x: int  # position in the turn (prompt tokens first)
    entropy_bits: float
    role: str
    generated: bool


def position_chart(points: Sequence[Point], *, y_max: float, generation_start: int | None,
                   width: int = 760, height: int = 120) -> str:
    """Entropy (bits) against token position: one dot per token, coloured by role; prompt dots
    faint, a dashed line where generation starts."""
    left, right, top, bottom = 34, 8, 8, 18
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max((p.x for p in points), default=0) + 1
    y_max = nice_ceiling(y_max)

    def sx(x: float) -> float:
        return left + (x + 0.5) * plot_w / n

    def sy(y: float) -> float:
        return top + plot_h * (1 - min(max(y, 0.0), y_max) / y_max)

    parts = [f'<svg class="chart pos" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="entropy over token position">',
             f'<rect class="bg" x="0" y="0" width="{width}" height="{height}" fill="{POSITION_BG}"/>']
    for tick in (0.0, y_max / 2, y_max):
        y = _f(sy(tick))
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y}" y2="{y}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y}" dy="3" text-anchor="end" font-size="9">{tick:g}</text>')
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="9">0</text>'
                 f'<text x="{width - right}" y="{height - 4}" font-size="9" text-anchor="end">'
                 f'position {n - 1} · entropy bits</text>')
    if generation_start is not None:
        x = _f(left + generation_start * plot_w / n)
        parts.append(f'<line class="genstart" x1="{x}" x2="{x}" y1="{top}" y2="{top + plot_h}" '
                     'stroke="#555" stroke-dasharray="3 2"/>')
    by_group: dict[tuple[str, bool], list[Point]] = {}
    for p in points:
        by_group.setdefault((p.role, p.generated), []).append(p)
    for (role, generated), group in by_group.items():
        opacity = "0.9" if generated else "0.35"
        dots = "".join(f'<circle cx="{_f(sx(p.x))}" cy="{_f(sy(p.entropy_bits))}" r="1.8"/>' for p in group)
        parts.append(f'<g class="dots {role_class(role)}" fill="{role_colour(role)}" fill-opacity="{opacity}">'
                     f"{dots}</g>")
    parts.append("</svg>")
    return "".join(parts)


def condition_chart(rows: Sequence[dict[str, Any]], *, width: int = 760) -> str:
    """Mean model entropy per condition × role (summary rows as dicts), one bar each, with a
    95% interval whisker where the row has one. Conditions in the order given."""
    label_w, right, row_h, head_h, axis_h = 230, 16, 14, 16, 22
    plot_w = width - label_w - right
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("mean_entropy_bits") is not None:
            groups.setdefault(str(r["condition"]), []).append(r)
    highs = [max(r["mean_entropy_bits"], *(r.get("ci95") or [0.0])) for g in groups.values() for r in g]
    x_max = nice_ceiling(max(highs, default=1.0))
    height = axis_h + sum(head_h + row_h * len(g) + 6 for g in groups.values()) + 4

    def sx(v: float) -> float:
        return label_w + plot_w * min(max(v, 0.0), x_max) / x_max

    parts = [f'<svg class="chart cond" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="mean entropy per condition and role">',
             f'<rect class="bg" x="0" y="0" width="{width}" height="{height}" fill="{CONDITION_BG}"/>']
    for i in range(5):
        v = x_max * i / 4
        x = _f(sx(v))
        parts.append(f'<line x1="{x}" x2="{x}" y1="{axis_h - 4}" y2="{height - 4}" stroke="#d8dce6"/>'
                     f'<text x="{x}" y="{axis_h - 8}" text-anchor="middle" font-size="9">{v:g}</text>')
    parts.append(f'<text x="4" y="{axis_h - 8}" font-size="9">mean model entropy, bits (95% CI)</text>')
    y = axis_h
    for condition, group in groups.items():
        parts.append(f'<text class="cond-label" x="4" y="{y + 11}" font-size="10" font-weight="bold">'
                     f"{escape(condition)}</text>")
        y += head_h
        for r in group:
            parts.append(_bar(r, y, row_h, sx))
            y += row_h
        y += 6
    parts.append("</svg>")
    return "".join(parts)


def _bar(r: dict[str, Any], y: float, row_h: int, sx) -> str:
    role, mean = str(r["role"]), float(r["mean_entropy_bits"])
    x0 = sx(0.0)
    label = f"{r.get('scope', '')} {role}".strip()
    out = (f'<text x="{_f(x0 - 4)}" y="{_f(y + row_h - 4)}" text-anchor="end" font-size="9">{escape(label)}</text>'
           f'<rect class="bar {role_class(role)}" x="{_f(x0)}" y="{_f(y + 2)}" width="{_f(sx(mean) - x0)}" '
           f'height="{row_h - 4}" fill="{role_colour(role)}"><title>{escape(label)}: {mean:.3f} bits</title></rect>')
    ci = r.get("ci95")
    if ci:
        lo, hi, mid = _f(sx(ci[0])), _f(sx(ci[1])), _f(y + row_h / 2)
        cap_a, cap_b = _f(y + 3), _f(y + row_h - 3)
        out += (f'<g class="ci" stroke="#222" stroke-width="1" shape-rendering="crispEdges"><line x1="{lo}" x2="{hi}" y1="{mid}" y2="{mid}"/>'
                f'<line x1="{lo}" x2="{lo}" y1="{cap_a}" y2="{cap_b}"/>'
                f'<line x1="{hi}" x2="{hi}" y1="{cap_a}" y2="{cap_b}"/></g>')
    return out
