"""`harness report`: the page's pure parts (escaping, shading, SVG charts), the command on a real
experiment database and a real chat log made with the fake backend, and the page rendered in
headless Chromium (no script errors, the tooltip builds, the screenshot shows shading and charts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.session import Session
from harness.chat.session_io import SessionIO
from harness.cli.main import main
from harness.experiment.db import report_turns
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template
from harness.report.charts import (
    CONDITION_BG,
    NO_STATS_SHADE,
    ROLE_COLOURS,
    SHADES,
    Point,
    condition_chart,
    nice_ceiling,
    position_chart,
    shade,
    shade_bin,
)
from harness.report.html import ReportOptions, render_report, script_json
from harness.report.sources import load_report_input
from harness.turn_log import TurnLog
from tests.support.chromium import chromium, needs_chromium
from tests.support.pngread import decode_png
from tests.support.runs import make_db, report_summary

HOSTILE = ["<script>alert(1)</script>", "</script><script>steal()</script>", "a & b", '"quoted"',
           "it's", "<|im_end|>", "line\nbreak", "<!--", "]]>"]


def token(piece: str, role: str = "assistant", entropy: float | None = 1.5, **extra) -> dict:
    return {"id": 7, "piece": piece, "role": role, "entropy_bits": entropy, "surprisal_bits": 2.0,
            "eot_prob": 0.01, "varentropy_bits2": 0.5, "top": [[piece, 0.6], ["<b>x</b>", 0.1]], **extra}


def turn_view(tokens, prompt_tokens=(), label="cond · seed 1", **extra) -> dict:
    return {"id": "r1c1t0", "label": label, "condition": {}, "text": "", "stop_reason": "eos",
            "prompt_tokens": list(prompt_tokens), "tokens": list(tokens), **extra}


def summary_row(condition="cond", role="assistant", mean=1.5, ci=(1.0, 2.0), scope="generated") -> dict:
    return {"condition": condition, "scope": scope, "role": role, "turns": 2, "tokens": 10,
            "mean_entropy_bits": mean, "ci95": list(ci) if ci else None, "mean_surprisal_bits": 2.0,
            "perplexity": 4.0, "mean_sampling_entropy_bits": None, "mean_varentropy_bits2": 0.5}


def page(turns, summary=(), **options) -> str:
    return render_report(turns, list(summary), ReportOptions("title <i>", "source & co", **options))


def tokdata(html: str):
    found = re.search(r'<script type="application/json" id="tokdata">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


# --- pure parts ---------------------------------------------------------------------------------

def test_hostile_token_text_is_escaped_everywhere():
    turns = [turn_view([token(p) for p in HOSTILE], [token(p, role="user") for p in HOSTILE],
                       label="<script>label()</script>")]
    html = page(turns, [summary_row(condition="<script>cond()</script>", role="<img src=x onerror=y>")])
    assert "<script>alert" not in html and "<script>steal" not in html and "<script>label" not in html
    assert "<script>cond" not in html and "<img" not in html and "<!--" not in html
    assert html.count("<script") == 3 and html.count("</script>") == 3  # recorder, data, app
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;|im_end|&gt;" in html
    assert "a &amp; b" in html and "&quot;quoted&quot;" in html
    data = tokdata(html)  # the data block parses back to exactly the pieces
    assert [d[0] for d in data["0"]["g"]] == HOSTILE and [d[0] for d in data["0"]["p"]] == HOSTILE
    assert data["0"]["g"][0][8] == [[HOSTILE[0], 0.6], ["<b>x</b>", 0.1]]


def test_script_json_cannot_close_its_element_and_drops_nan():
    text = script_json({"a": "</script><!--&", "b": [float("nan"), float("inf"), 1.5]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!--&", "b": [None, None, 1.5]}


def test_the_page_loads_nothing():
    html = page([turn_view([token("x")])], [summary_row()])
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"\b(src|href)\s*=", html)
    assert set(re.findall(r"https?://[^\s\"']+", html)) == {"http://www.w3.org/2000/svg"}  # SVG namespace


@pytest.mark.parametrize("values", [[0.0, 0.1, 0.49, 0.5, 0.99, 1.0, 1.5, 2.0, 2.9, 3.0, 4.9, 5.0, 8.0, 17.0]])
def test_shading_is_monotone_and_darkens(values):
    bins = [shade_bin(v) for v in values]
    assert bins == sorted(bins) and bins[0] == 0 and bins[-1] == len(SHADES) - 1
    assert set(bins) == set(range(len(SHADES)))

    def luminance(colour: str) -> float:
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    lum = [luminance(c) for c in SHADES]
    assert all(a > b for a, b in zip(lum, lum[1:], strict=False))
    assert shade(None) == shade(float("nan")) == NO_STATS_SHADE


@pytest.mark.parametrize(("x", "want"), [(0, 1), (0.3, 0.5), (1, 1), (1.01, 2), (2.2, 2.5), (4, 5),
                                         (7.9, 10), (12, 20)])
def test_nice_ceiling(x, want):
    assert nice_ceiling(x) == pytest.approx(want)


def test_position_chart_has_a_dot_per_token_and_marks_the_start_of_generation():
    points = [Point(x, x / 3, "user" if x < 5 else "assistant", x >= 5) for x in range(12)]
    svg = position_chart(points, y_max=3.7, generation_start=5)
    assert svg.count("<circle") == 12 and svg.count('class="genstart"') == 1
    assert svg.count('fill-opacity="0.35"') == 1 and svg.count('fill-opacity="0.9"') == 1
    assert 'class="dots r-user"' in svg and 'class="dots r-assistant"' in svg
    assert ">5<" in svg and ">2.5<" in svg  # y axis up to the nice ceiling of 3.7
    assert "genstart" not in position_chart(points[:3], y_max=1, generation_start=None)


def test_condition_chart_draws_a_bar_per_row_and_whiskers_where_there_are_intervals():
    rows = [summary_row("A", "assistant", 1.0, (0.5, 1.5)), summary_row("A", "user", 2.0, (1.0, 3.0)),
            summary_row("B <x>", "assistant", 3.0, None), summary_row("B <x>", "template", None, None)]
    svg = condition_chart(rows)
    assert svg.count('<rect class="bar') == 3  # a row without a mean has no bar
    assert svg.count('<g class="ci"') == 2 and svg.count("<line") >= 2 * 3
    assert svg.count('class="cond-label"') == 2 and "B &lt;x&gt;" in svg
    widths = [float(w) for w in re.findall(r'<rect class="bar[^"]*" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[0] < widths[1] < widths[2]  # bar length follows the mean


def test_transcript_is_capped_with_a_note_and_prompt_tails_are_kept():
    turns = [turn_view([token("g")], [token(f"p{i}", role="user") for i in range(30)]) for _ in range(7)]
    html = page(turns, [summary_row()], max_turns=3, max_prompt_tokens=10)
    assert html.count('<section class="turn') == 3
    assert "Showing the first 3 of 7 turns" in html and "20 earlier prompt tokens not shown" in html
    data = tokdata(html)
    assert len(data) == 3 and [d[0] for d in data["0"]["p"]] == [f"p{i}" for i in range(20, 30)]


def test_a_run_without_finished_turns_still_makes_a_page():
    html = page([], [])
    assert "No finished turns." in html and html.count("<svg") == 1 and tokdata(html) == {}


def test_token_spans_carry_shade_role_and_key():
    html = page([turn_view([token("hi", entropy=0.1), token("yo", entropy=9.0, truncated=True, tail_mass=0.2)],
                           [token("<s>", role="template", entropy=None)])])
    assert '<span class="t h0 r-assistant" data-k="0g0">hi</span>' in html
    assert '<span class="t h5 r-assistant" data-k="0g1">yo</span>' in html
    assert '<span class="t hn r-template" data-k="0p0">&lt;s&gt;</span>' in html
    assert tokdata(html)["0"]["g"][1][9:11] == [1, 0.2]


# --- the command on a real database and a real log (fake backend) ------------------------------

@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return make_db(tmp_path_factory.mktemp("report-db"))


def test_report_of_a_database(db, tmp_path, capsys):
    out = tmp_path / "out" / "report.html"
    assert main(["report", str(db), "--html", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    turns, rows = report_turns(db), report_summary(db)
    assert html.count('<section class="turn') == len(turns) == 12
    assert html.count("<tr>") == len(rows) + 1  # header + one row per summary row
    assert "report-test · run 1" in html and "fake · chatml · past-eos · eos=continue · default" in html
    data = tokdata(html)
    assert [d[0] for d in data["0"]["g"]] == [t["piece"] for t in turns[0]["tokens"]]
    assert [d[3] for d in data["0"]["p"]] == [t["entropy_bits"] for t in turns[0]["prompt_tokens"]]
    err = capsys.readouterr().err
    assert "report of 12 turns" in err and str(out) in err
    assert main(["report", str(db), "--run", "1", "--html", str(out), "--max-turns", "2"]) == 0
    assert out.read_text(encoding="utf-8").count('<section class="turn') == 2


@pytest.mark.parametrize(("args", "message"), [
    (["missing.sqlite"], "no such experiment database or log"),
    (["DB", "--run", "999"], "no run 999 (runs: 1)"),
    (["garbage.bin"], "the log holds no complete turn"),
    (["notes.jsonl", "--run", "1"], "--run applies to an experiment database, not to a log"),
    (["broken.db"], "cannot read the database"),
    (["DB", "--max-turns", "-1"], "--max-turns must be 0 or more"),
])
def test_report_errors_are_one_line(db, tmp_path, capsys, args, message):
    (tmp_path / "garbage.bin").write_bytes(b"\x00\x01 not json\n")
    (tmp_path / "notes.jsonl").write_text("{}\n")
    (tmp_path / "broken.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    args = [str(db) if a == "DB" else str(tmp_path / a) if "." in a else a for a in args]
    out = tmp_path / "r.html"
    assert main(["report", *args, "--html", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("harness: error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_report_of_a_chat_log(tmp_path, capsys):
    backend = FakeBackend("Hi <you> & me!<|im_end|>")
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    log = TurnLog(tmp_path / "chat.jsonl")
    session = Session(bench, params=SamplingParams(temperature=0, max_tokens=20), io=SessionIO(log))
    for line in ("Hello", "/impersonate", "Again?"):
        handle(session, line, lambda event: None)
    log.close()
    out = tmp_path / "chat.html"
    assert main(["report", str(tmp_path / "chat.jsonl"), "--html", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.count('<section class="turn') == 3 and "session log" in html
    assert "a log keeps no prompt token statistics" in html and "&lt;|im_start|&gt;user\nHello" in html
    assert "fake · model:gguf · impersonate · eos=stop · log" in html
    assert re.search(r'<td class="l">generated</td><td class="l"><span class="chip"[^>]*></span>user</td>', html)
    assert "Hi &lt;you&gt; &amp; me!" in "".join(re.findall(r'data-k="0g\d+">([^<]*)<', html))
    source = load_report_input(tmp_path / "chat.jsonl")
    assert source.kind == "log" and {r["scope"] for r in source.summary} == {"generated"}
    assert [t["condition"]["mode"] for t in source.turns] == ["reply", "impersonate", "reply"]


# --- headless Chromium ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report-page") / "report.html"
    assert main(["report", str(db), "--html", str(out)]) == 0
    return out


def page_errors(dom: str) -> str:
    found = re.search(r'<div id="page-errors"[^>]*>(.*?)</div>', dom, re.S)
    assert found, "the error recorder's element is missing"
    return found.group(1)


@needs_chromium
def test_chromium_runs_the_page_without_errors_and_builds_the_tooltip(report, tmp_path):
    proc = chromium(tmp_path, report.as_uri() + "#tok=0g1", "--dump-dom")
    dom = proc.stdout
    assert '<body data-ready="1"' in dom  # the app script ran to its end
    assert page_errors(dom) == ""
    assert "Uncaught" not in proc.stderr and "CONSOLE" not in proc.stderr
    tip = dom[dom.index('<div id="tip"'):]
    assert "top alternatives" in tip and "surprisal" in tip and "end-of-turn prob" in tip
    assert 'class="t h' in dom and 'pin"' in dom and "<svg" in dom


@needs_chromium
def test_chromium_error_recorder_reports_script_errors(tmp_path):
    from harness.report.assets import ERROR_RECORDER

    bad = tmp_path / "bad.html"
    bad.write_text(f'<!doctype html><html><head><script>{ERROR_RECORDER}</script></head><body>'
                   '<div id="page-errors" hidden></div><script>console.error("told you");'
                   "undefinedFunction();</script></body></html>", encoding="utf-8")
    errors = page_errors(chromium(tmp_path, bad.as_uri(), "--dump-dom").stdout)
    assert "console.error: told you" in errors and "undefinedFunction" in errors


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@needs_chromium
def test_chromium_screenshot_shows_shaded_tokens_and_the_charts(report, tmp_path):
    shot = tmp_path / "shot.png"
    chromium(tmp_path, report.as_uri(), f"--screenshot={shot}", "--window-size=1280,2000")
    image = decode_png(shot.read_bytes())
    assert (image.width, image.height) == (1280, 2000)
    counts: dict[tuple[int, int, int], int] = {}
    for _, _, rgb in image.pixels():
        counts[rgb] = counts.get(rgb, 0) + 1
    assert len(counts) > 50 and max(counts.values()) < 0.95 * image.width * image.height  # not blank
    # the darkest shade: one legend swatch is ~50 x 18 px; the table cells and tokens add far more
    assert counts.get(_rgb(SHADES[-1]), 0) > 3000
    assert counts.get(_rgb(SHADES[0]), 0) > 1000
    # the condition chart: find its background, then its bars and whiskers inside it
    box = [(x, y) for x, y, rgb in image.pixels() if rgb == _rgb(CONDITION_BG)]
    assert len(box) > 20000
    xs, ys = [x for x, _ in box], [y for _, y in box]
    inside = (min(xs), min(ys), max(xs) + 1, max(ys) + 1)
    drawn = [rgb for _, _, rgb in image.pixels(inside) if rgb != _rgb(CONDITION_BG)]
    assert len(drawn) > 0.05 * (inside[2] - inside[0]) * (inside[3] - inside[1])
    bar_pixels = sum(1 for rgb in drawn if rgb in (_rgb(ROLE_COLOURS["assistant"]), _rgb(ROLE_COLOURS["user"])))
    assert bar_pixels > 2000
    assert sum(1 for rgb in drawn if rgb == (0x22, 0x22, 0x22)) > 30  # whiskers
