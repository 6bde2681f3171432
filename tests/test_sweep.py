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
