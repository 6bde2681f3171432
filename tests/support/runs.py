"""Reading a run back as the tests check it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.backends.fake import FakeBackend
from harness.experiment.db import connect, open_run, resolve_run, summary
from harness.experiment.run import run_cells
from harness.experiment.spec import expand, parse_experiment


def report_summary(db_path: str | Path, run_id: int | None = None) -> list[dict[str, Any]]:
    """Summary rows of a run (default: the newest) as dicts: condition, scope, role, tokens,
    means with 95% bootstrap intervals, perplexity."""
    conn = connect(db_path)
    try:
        return [row.to_dict() for row in summary(conn, resolve_run(conn, run_id, str(db_path)))]
    finally:
        conn.close()


FAKE = """\
models: [{name: fake, templates: [chatml]}]
modes: [reply, impersonate, past-eos]
seeds: [1, 2]
max_tokens: 6
conversations:
  - {name: a, messages: [{role: user, content: Hi}]}
  - {name: b, messages: [{role: user, content: Hi}, {role: assistant, content: Yo}, {role: user, content: Bye}]}
"""


def fake_run(tmp_path, stop_after=None, force_new=False):
    """The FAKE experiment run on the fake backend into tmp_path/fake.sqlite, stopped after
    `stop_after` cells: (cells, run id, resumed, outcome, keys of the cells run)."""
    exp = parse_experiment(FAKE, where="fake.yaml", base=tmp_path)
    cells = expand(exp)
    conn = connect(tmp_path / "fake.sqlite")
    run_id, resumed = open_run(conn, exp, cells, force_new=force_new)
    seen = []
    outcome = run_cells(exp, conn, run_id, cells, on_cell=lambda c, t: seen.append(c.key),
                        should_stop=lambda: stop_after is not None and len(seen) >= stop_after,
                        open_backend=lambda model, threads: FakeBackend("Hello!"))
    conn.close()
    return cells, run_id, resumed, outcome, seen


REPORT_EXPERIMENT = """\
name: report-test
models: [{name: fake, templates: [chatml]}]
modes: [reply, impersonate, past-eos]
seeds: [1, 2]
max_tokens: 8
conversations:
  - {name: a, messages: [{role: system, content: "Be <brief> & kind."}, {role: user, content: Hi}]}
  - {name: b, messages: [{role: user, content: Hi}, {role: assistant, content: Yo}, {role: user, content: Bye}]}
"""


def make_db(directory: Path) -> Path:
    """The REPORT_EXPERIMENT run on the fake backend: the database's path."""
    exp = parse_experiment(REPORT_EXPERIMENT, where="report.yaml", base=directory)
    cells = expand(exp)
    db = directory / "report.sqlite"
    conn = connect(db)
    run_id, _ = open_run(conn, exp, cells)
    run_cells(exp, conn, run_id, cells, open_backend=lambda model, threads: FakeBackend("Hello <there> & bye!"))
    conn.close()
    return db
