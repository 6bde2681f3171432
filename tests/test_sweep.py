"""The temperature sweep axis and the summary's calibration per condition and role."""

from __future__ import annotations

import pytest

from harness.errors import ExperimentError
from harness.experiment.spec import expand, parse_experiment
from tests.support.runs import fake_run, report_summary

BASE = """\
models: [fake]
conversations: [{messages: [{role: user, content: hi}]}]
"""


def test_sweep_crosses_each_sampling_set_with_each_value(tmp_path):
    exp = parse_experiment(BASE + "sweep: {temperature: [0.3, 0.7, 1.0, 1.3]}\n", where="x", base=tmp_path)
    assert [(n, p.temperature) for n, p in exp.sampling] == [("T=0.3", 0.3), ("T=0.7", 0.7), ("T=1.0", 1.0),
                                                             ("T=1.3", 1.3)]
    exp = parse_experiment(BASE + "sampling: {k40: {top_k: 40}, all: {top_k: 0}}\n"
                           "sweep: {temperature: [0.3, 1.0]}\nseeds: [1, 2]\n", where="x", base=tmp_path)
    assert [(n, p.temperature, p.top_k) for n, p in exp.sampling] == [
        ("k40 T=0.3", 0.3, 40), ("k40 T=1.0", 1.0, 40), ("all T=0.3", 0.3, 0), ("all T=1.0", 1.0, 0)]
    assert len(expand(exp)) == 4 * 2


@pytest.mark.parametrize(("sweep", "field"), [
    ("{temprature: [0.3]}", "sweep.temprature"),
    ("{temperature: []}", "sweep.temperature"),
    ("{temperature: [0.3, -1]}", "sweep.temperature[1]"),
    ("{temperature: [0.3, 0.3]}", "sweep"),
])
def test_bad_sweeps_name_the_field(tmp_path, sweep, field):
    with pytest.raises(ExperimentError) as err:
        parse_experiment(BASE + f"sweep: {sweep}\n", where="x.yaml", base=tmp_path)
    assert f"'{field}'" in str(err.value)


def test_summary_rows_carry_calibration_bins(tmp_path):
    _, run_id, _, _, _ = fake_run(tmp_path)
    rows = report_summary(tmp_path / "fake.sqlite", run_id)
    for row in rows:
        cal = row["calibration"]
        assert len(cal["bins"]) == 10 and sum(b["n"] for b in cal["bins"]) == cal["n"]
        assert 0.0 <= cal["ece"] <= 1.0
    # a generated row's tokens: every one has statistics, so n = its token count
    gen = next(r for r in rows if r["scope"] == "generated")
    assert gen["calibration"]["n"] == gen["tokens"]


def test_a_sweep_matrix_past_the_limit_is_refused_before_it_is_built(tmp_path):
    """Issue 26, finding 6: 6 axes x 50 values ran out of memory after ~80 s building the
    matrix; the size is now computed from the lists' lengths first."""
    import time

    axes = ("temperature", "top_p", "min_p", "repeat_penalty", "typical_p", "top_k")
    text = ("models: [fake]\nconversations:\n  - {name: a, messages: [{role: user, content: Hi}]}\nsweep:\n"
            + "".join(f"  {k}: [{', '.join(str(0.01 * i) for i in range(1, 51))}]\n" for k in axes))
    start = time.monotonic()
    with pytest.raises(ExperimentError) as err:
        parse_experiment(text, where="sweep.yaml", base=tmp_path)
    assert time.monotonic() - start < 5
    assert "sweep" in err.value.message and "100,000 cells" in err.value.message


def test_a_matrix_of_many_small_lists_is_counted_exactly(tmp_path):
    text = ("models: [fake]\nseeds: [" + ", ".join(map(str, range(400))) + "]\nconversations:\n"
            + "".join(f"  - {{name: c{i}, messages: [{{role: user, content: Hi}}]}}\n" for i in range(300)))
    with pytest.raises(ExperimentError, match="100,000"):
        parse_experiment(text, where="m.yaml", base=tmp_path)
