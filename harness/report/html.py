"""The HTML report: turn views and summary rows in, one self-contained page out.

The page loads nothing (a Content-Security-Policy forbids any fetch): styles, scripts, charts
(inline SVG) and token details (JSON in a script element) are all inside. Token text reaches the
page only through ``html.escape`` (markup) or through JSON with ``<``, ``>`` and ``&`` escaped
(the data block); the tooltip script writes it with textContent.

Size: the transcript shows at most ``max_turns`` turns, the last ``max_prompt_tokens`` prompt
tokens and the first ``MAX_GENERATED_TOKENS`` generated tokens of each (a database source reads
no more than that); the summary table and the condition chart always cover the whole input.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from harness.report.assets import APP, CSS, ERROR_RECORDER
from harness.report.charts import (
    BIN_EDGES_BITS,
    NO_STATS_SHADE,
    SHADES,
    Point,
    bin_label,
    condition_chart,
    nice_ceiling,
    position_chart,
    role_class,
    role_colour,
    shade_bin,
)
from harness.report.study_charts import calibration_section, choice_section, sweep_chart
from harness.stats.intervals import FEW_CONVERSATIONS
from harness.stats.quadrants import quadrant
from harness.untrusted import finite

MAX_TURNS = 50
MAX_PROMPT_TOKENS = 1000
MAX_GENERATED_TOKENS = 2_000  # of one turn (a database may hold millions), as the prompt shows its last 1,000


def _script_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


# Scripts run only if they are exactly harness's own two (by hash): an injected <script> or an
# event-handler attribute would not run even if escaping ever failed.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; "
       f"script-src {_script_hash(ERROR_RECORDER)} {_script_hash(APP)}; "
       "img-src data:; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class ReportOptions:
    title: str
    source: str  # one line under the title: the input file, run, counts
    max_turns: int = MAX_TURNS
    max_prompt_tokens: int = MAX_PROMPT_TOKENS
    choices: tuple[dict[str, Any], ...] = ()  # multiple-choice results per condition


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no `<`, `>` or `&` survives, so neither
    `</script>` nor `<!--` can appear."""
    text = json.dumps(finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(turns: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                  options: ReportOptions) -> str:
    """The whole page as a string (the caller writes it)."""
    shown = list(turns[:max(options.max_turns, 0)])
    roles = _roles(turns, summary)
    y_max = nice_ceiling(max((t["entropy_bits"] for turn in shown for t in _all_tokens(turn)
                              if t.get("entropy_bits") is not None), default=1.0))
    sections, data = [], {}
    for i, turn in enumerate(shown):
        html, data[str(i)] = _turn(i, turn, y_max, options.max_prompt_tokens)
        sections.append(html)
    n_tokens = sum(t.get("generated_total", len(t.get("tokens", []))) for t in turns)
    note = (f"Showing the first {len(shown)} of {len(turns)} turns; the summary and the condition "
            "chart cover all of them." if len(shown) < len(turns) else "")
    return "".join([
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(options.title)}</title><style>{CSS}{_role_css(roles)}{_shade_css()}</style>",
        f"<script>{ERROR_RECORDER}</script></head>",
        '<body data-ready="0"><div id="page-errors" hidden></div>',
        f'<header><h1>{escape(options.title)}</h1><p class="meta">{escape(options.source)} · '
        f"{len(turns)} turns · {n_tokens} generated tokens</p></header>",
        _legend(roles),
        '<section id="summary"><h2>Per-role summary</h2>', _summary_table(summary), "</section>",
        '<section id="conditions"><h2>Conditions</h2>',
        condition_chart([r for r in summary if r.get("scope", "generated") == "generated"] or summary),
        "</section>", _study_sections(summary, options.choices),
        '<section id="transcript"><h2>Transcript</h2>',
        f'<p class="note">{escape(note)}</p>' if note else "", *sections, "</section>",
        f'<script type="application/json" id="tokdata">{script_json(data)}</script>',
        f"<script>{APP}</script></body></html>\n",
    ])


def _study_sections(summary: Sequence[dict[str, Any]], choices: Sequence[dict[str, Any]] = ()) -> str:
    """Temperature sweeps (when the run has one), multiple-choice results and reliability
    diagrams per condition and role."""
    sweep = sweep_chart(summary)
    out = (f'<section id="sweep"><h2>Temperature</h2>{sweep}</section>' if sweep else "")
    if choices:
        out += ('<section id="choices"><h2>Multiple choice</h2><p class="note">Per condition: the answer is '
                "the most probable option letter; confidence its probability renormalised over the letters."
                f"</p>{choice_section(choices)}</section>")
    if any(r.get("calibration") for r in summary):
        out += ('<section id="calibration"><h2>Calibration</h2><p class="note">Per condition and role: '
                "tokens binned by the top-1 probability of the distribution that predicted them; bars are "
                "the fraction that was the top-1, ticks the mean confidence, the dashed diagonal perfect "
                f"calibration.</p>{calibration_section(summary)}</section>")
    return out


def _all_tokens(turn: dict[str, Any]) -> list[dict[str, Any]]:
    return [*turn.get("prompt_tokens", []), *turn.get("tokens", [])]


def _roles(turns: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]]) -> list[str]:
    seen = dict.fromkeys(["system", "user", "assistant", "template"])
    for turn in turns:
        seen |= dict.fromkeys(t["role"] for t in _all_tokens(turn))
    seen |= dict.fromkeys(str(r["role"]) for r in summary)
    return list(seen)


def _role_css(roles: Sequence[str]) -> str:
    return "".join(f".t.{role_class(r)}{{border-bottom-color:{role_colour(r)}}}"
                   f".turn.{role_class(r)}{{border-left-color:{role_colour(r)}}}" for r in roles)


def _shade_css() -> str:
    return "".join(f".h{i}{{background:{c}}}" for i, c in enumerate(SHADES)) + f".hn{{background:{NO_STATS_SHADE}}}"


def _legend(roles: Sequence[str]) -> str:
    bins = "".join(f'<span class="sw h{i}">{escape(bin_label(i))}</span>' for i in range(len(SHADES)))
    chips = "".join(f'<span><span class="chip" style="background:{role_colour(r)}"></span>{escape(r)}</span>'
                    for r in roles)
    return ('<section id="legend" class="legend"><b>model entropy, bits:</b>' + bins
            + '<span class="sw hn">no stats</span><b>roles (underline, left band):</b>' + chips
            + f'<span class="note">shading edges {", ".join(f"{e:g}" for e in BIN_EDGES_BITS)} bits; '
            "hover a token for details, click to pin</span></section>")


_COLUMNS = (("condition", "l"), ("scope", "l"), ("role", "l"), ("conversations", ""), ("turns", ""), ("tokens", ""),
            ("model H bits", ""), ("95% CI", ""), ("surprisal", ""), ("ppl", ""), ("sampled H", ""),
            ("varentropy", ""), ("ECE (null)", ""), ("distinct-2", ""), ("past EOS cont/new", ""))


def _summary_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="note">No finished turns.</p>'
    head = "".join(f'<th class="{c}">{escape(name)}</th>' for name, c in _COLUMNS)
    return f'<table class="sum"><thead><tr>{head}</tr></thead><tbody>{"".join(map(_summary_row, rows))}</tbody></table>'


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _summary_row(r: dict[str, Any]) -> str:
    role, ent, ci = str(r["role"]), r.get("mean_entropy_bits"), r.get("ci95")
    shade_i = shade_bin(ent)
    cells = [
        f'<td class="l">{escape(str(r["condition"]))}</td><td class="l">{escape(str(r.get("scope", "")))}</td>',
        f'<td class="l"><span class="chip" style="background:{role_colour(role)}"></span>{escape(role)}</td>',
        f'<td>{_conversations(r)}</td><td>{r.get("turns", "–")}</td><td>{r.get("tokens", "–")}</td>',
        f'<td class="{"hn" if shade_i is None else f"h{shade_i}"}">{_num(ent)}{_within(r.get("entropy_bounds_bits"))}</td>',
        f"<td>{f'[{ci[0]:.2f}, {ci[1]:.2f}]' if ci else '–'}</td>",
        f'<td>{_num(r.get("mean_surprisal_bits"))}</td><td>{_num(r.get("perplexity"), 2)}</td>',
        f'<td>{_num(r.get("mean_sampling_entropy_bits"))}</td><td>{_num(r.get("mean_varentropy_bits2"))}</td>',
        f'<td>{_ece(r.get("calibration"))}</td>',
        f'<td>{_num((r.get("diversity") or {}).get("distinct_2"))}</td>',
        f'<td>{_past_eos(r.get("past_eos"))}</td>',
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _within(bounds: list[float | None] | None) -> str:
    """A server's top-k row: the interval its point estimate lies in (mean of the tokens' bounds)."""
    if not bounds:
        return ""
    return f'<br><small title="bounds from the top-k">in [{_num(bounds[0], 2)}, {_num(bounds[1], 2)}]</small>'


def _conversations(r: dict[str, Any]) -> str:
    """`12`, or `3*` below FEW_CONVERSATIONS (the interval is honest and wide)."""
    n = r.get("conversations")
    return "–" if n is None else f"{n}{'*' if n < FEW_CONVERSATIONS else ''}"


def _ece(cal: dict[str, Any] | None) -> str:
    """ECE and a perfectly calibrated model's at the same confidences; generated tokens' is the
    sampler's (not shown)."""
    if not cal or cal.get("ece") is None or cal.get("measures") == "sampler":
        return "–"
    return f"{cal['ece']:.3f} ({_num(cal.get('ece_null'))})"


def _past_eos(counts: dict[str, int] | None) -> str:
    return "–" if not counts else f"{counts['continues']}/{counts['new_conversation']}"


def _turn(i: int, turn: dict[str, Any], y_max: float, max_prompt: int) -> tuple[str, dict[str, Any]]:
    """A turn's section and its token details ({"p": [...], "g": [...]})."""
    prompt_all = turn.get("prompt_tokens", [])
    prompt = prompt_all[-max_prompt:] if max_prompt > 0 else []
    generated = turn.get("tokens", [])
    points = [Point(x, t["entropy_bits"], t["role"], x >= len(prompt))
              for x, t in enumerate([*prompt, *generated]) if t.get("entropy_bits") is not None]
    writer = next((t["role"] for t in generated if t["role"] != "template"), "assistant")
    prompt_total = turn.get("prompt_total", len(prompt_all))
    generated_total = turn.get("generated_total", len(generated))
    cut = prompt_total - len(prompt)
    prompt_html = _spans(f"{i}p", prompt)
    if cut:
        prompt_html = f'<span class="note">… {cut} earlier prompt tokens not shown …</span>\n' + prompt_html
    elif not prompt and turn.get("prompt"):
        prompt_html = f'<pre>{escape(turn["prompt"])}</pre><span class="note">(a log keeps no prompt token statistics)</span>'
    head = (f'<h3>{escape(str(turn.get("label", "")))}</h3><p class="meta">{escape(str(turn.get("id", "")))} · '
            f'stop: {escape(str(turn.get("stop_reason", "")))} · {prompt_total} prompt tokens · '
            f"{generated_total} generated</p>")
    later = generated_total - len(generated)
    generated_html = _spans(f"{i}g", generated) + (
        f'<span class="note">… {later} later generated tokens not shown …</span>' if later > 0 else "")
    html = (f'<section class="turn {role_class(writer)}" id="turn-{i}">{head}'
            + position_chart(points, y_max=y_max, generation_start=len(prompt) if prompt else None)
            + f'<details class="prompt"><summary>prompt</summary><div class="toks">{prompt_html}</div></details>'
            + f'<p class="gen-label">generated</p><div class="toks gen">{generated_html}</div></section>')
    return html, {"p": [_details(t) for t in prompt], "g": [_details(t) for t in generated]}


def _spans(prefix: str, tokens: Sequence[dict[str, Any]]) -> str:
    out = []
    for j, t in enumerate(tokens):
        shade_i = shade_bin(t.get("entropy_bits"))
        text = escape(t["piece"]).replace("\n", "↵\n")
        out.append(f'<span class="t {"hn" if shade_i is None else f"h{shade_i}"} {role_class(t["role"])}" '
                   f'data-k="{prefix}{j}">{text}</span>')
    return "".join(out)


def _details(t: dict[str, Any]) -> list[Any]:
    """A token's tooltip data, positional to keep the page small (see report_assets.APP)."""
    return [t["piece"], t["role"], t.get("id"), t.get("entropy_bits"), t.get("surprisal_bits"),
            t.get("eot_prob"), t.get("varentropy_bits2"), t.get("sampling_entropy_bits"),
            t.get("top") or [], 1 if t.get("truncated") else 0, t.get("tail_mass"), t.get("bytes"),
            quadrant(t.get("entropy_bits"), t.get("varentropy_bits2")),
            t.get("entropy_bounds_bits"), t.get("eot_prob_bounds")]
