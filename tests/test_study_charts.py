"""The report's study views: reliability diagrams and the temperature chart (pure SVG)."""

from __future__ import annotations

from harness.report.html import ReportOptions, render_report
from harness.report.study_charts import (
    calibration_section,
    reliability_diagram,
    sweep_chart,
    sweep_series,
)
from harness.stats.calibration import calibration


def _row(condition, role="assistant", scope="generated", tokens=10, ent=2.0, samp=1.0, d2=0.5, cal=True):
    row = {"condition": condition, "scope": scope, "role": role, "tokens": tokens, "mean_entropy_bits": ent,
           "mean_sampling_entropy_bits": samp, "diversity": {"distinct_2": d2}}
    if cal:
        row["calibration"] = calibration([0.15, 0.95, 0.95, 0.55], [False, True, False, True]).to_dict()
    return row


def test_reliability_diagram_has_a_bar_per_filled_bin_and_the_ece():
    row = _row("m · t · score · eos=stop · default")
    svg = reliability_diagram(row)
    assert svg.count('class="relbar"') == 3  # bins 1, 5 and 9 hold tokens
    assert f"ECE {row['calibration']['ece']:.3f}" in svg
    section = calibration_section([row, _row("<b>other</b>", cal=False)])
    assert "&lt;b&gt;" not in section and "m · t · score" in section  # rows without calibration left out


def test_sweep_chart_draws_one_line_per_series_and_panel():
    rows = [_row(f"m{m} · t · reply · eos=stop · k40 T={t}", ent=2.0, samp=t, d2=t / 2)
            for m in (1, 2) for t in (0.3, 0.7, 1.3)]
    rows.append(_row("m1 · t · reply · eos=stop · k40 T=0.3", role="template", tokens=2))  # not the writer
    series = sweep_series(rows)
    assert list(series) == ["m1 · t · reply · eos=stop · k40", "m2 · t · reply · eos=stop · k40"]
    assert [t for t, _ in series["m1 · t · reply · eos=stop · k40"]] == [0.3, 0.7, 1.3]
    svg = sweep_chart(rows)
    assert svg.count('class="sweepline"') == 2 * 3
    assert sweep_chart([_row("m · t · reply · eos=stop · t0.8")]) == ""  # nothing swept: no chart


def test_the_report_page_carries_the_study_sections():
    rows = [_row(f"m · t · reply · eos=stop · T={t}") | {"ci95": [1.0, 3.0], "turns": 2,
                                                            "past_eos": {"continues": 1, "new_conversation": 2}}
            for t in (0.3, 1.0)]
    page = render_report([], rows, ReportOptions("t", "s"))
    assert 'id="sweep"' in page and 'id="calibration"' in page and "<td>1/2</td>" in page


def test_entropy_varentropy_quadrants_annotate_tokens():
    from harness.report.html import _details
    from harness.stats.quadrants import quadrant

    assert quadrant(0.3, 0.5) == "confident" and quadrant(0.3, 9.0) == "confident, long tail"
    assert quadrant(3.0, 0.5) == "evenly torn" and quadrant(3.0, 9.0) == "uncertain, lumpy"
    assert quadrant(None, None) is None
    token = {"piece": "a", "role": "user", "entropy_bits": 3.0, "varentropy_bits2": 1.0}
    assert _details(token)[12] == "evenly torn"


def test_multiple_choice_results_get_their_own_section():
    choice = {"condition": "m · t · choice · eos=stop · default", "items": 3, "accuracy": 2 / 3,
              "mean_confidence": 0.7, "mean_letter_mass": 0.9,
              "calibration": calibration([0.9, 0.6, 0.55], [True, False, True]).to_dict()}
    page = render_report([], [], ReportOptions("t", "s", choices=(choice,)))
    assert 'id="choices"' in page and "accuracy 0.667" in page and page.count('class="relbar"') == 3  # bins 5, 6 and 9
    assert 'id="choices"' not in render_report([], [], ReportOptions("t", "s"))
