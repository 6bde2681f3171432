"""`harness run --backend URL1,URL2`: an experiment's cells spread over servers.

The servers are loopback stubs of llama-server (tests/support/llama_server_stub.py) answering from the
FakeBackend. Checked: every cell runs exactly once and the database says which server ran it;
an interrupted run resumes without duplicates or gaps; a dead or failing server gives one line
naming its URL, keeps what the others finished and leaves its cell pending for a resume.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.backends.servers import open_engine
from harness.cli.main import main
from harness.errors import RemoteError
from harness.experiment import pool as experiment_pool
from harness.experiment.cell_queue import CellQueue, prefix_groups
from harness.experiment.db import SCHEMA, SCHEMA_VERSION, connect, open_run
from harness.experiment.pool import run_cells_remote
from harness.experiment.spec import expand, parse_experiment
from tests.support.llama_server_stub import StubServer

SCRIPT = "Hi there, friend.<|im_end|>"
EXPERIMENT = """\
name: pool
models: [{name: fake, label: fake}]
templates: [gguf, chatml]
modes: [reply, past-eos]
seeds: [1, 2]
max_tokens: 6
conversations:
  - {name: a, messages: [{role: user, content: Hi}]}
  - {name: b, messages: [{role: user, content: Hi}, {role: assistant, content: Yo}, {role: user, content: Bye}]}
"""
N_CELLS = 2 * 2 * 2 * 2  # templates × conversations × modes × seeds


# --- the queue (pure) ------------------------------------------------------------------------

@dataclass(frozen=True)
class _C:
    template: str
    conversation: str
    n: int


def _cells(groups: int, size: int) -> list[_C]:
    return [_C("t", f"c{g}", i) for g in range(groups) for i in range(size)]


def test_queue_hands_out_whole_prefix_groups_then_splits_the_largest():
    cells = _cells(2, 4)
    assert [len(g) for g in prefix_groups(reversed(cells))] == [4, 4]
    q = CellQueue(cells)
    assert [q.take("A"), q.take("B")] == [cells[0], cells[4]]
    assert q.take("A") == cells[1]  # A stays on its group
    assert q.take("C") == cells[6]  # no group left: C takes the back half of B's (5, 6, 7 -> 6, 7)
    assert q.take("C") == cells[7] and q.take("B") == cells[5]
    taken = [q.take(s) for s in "CCBBAA"]
    assert sorted(c.n for c in taken if c) == [2, 3] and len(q) == 0 and q.take("A") is None


def test_queue_gives_back_what_a_dropped_server_held():
    cells = _cells(1, 5)
    q = CellQueue(cells)
    assert q.take("A") == cells[0]
    q.release("A")  # A failed while running cells[0]: that one is not handed out again
    seen = []
    while (cell := q.take("B")) is not None:
        seen.append(cell)
    assert seen == cells[1:]


# --- runs over stub servers ------------------------------------------------------------------

@pytest.fixture
def exp_file(tmp_path: Path) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(EXPERIMENT)
    return path


def _run(exp_file: Path, urls: list[str], **kw):
    exp = parse_experiment(exp_file.read_text(), where=str(exp_file), base=exp_file.parent)
    cells = expand(exp)
    conn = connect(exp_file.with_suffix(".sqlite"))
    run_id, _ = open_run(conn, exp, cells)
    try:
        return run_cells_remote(exp, conn, run_id, cells, urls, **kw)
    finally:
        conn.close()


def _cells_by_status(db: Path) -> dict[str, list[tuple[str, str | None, int]]]:
    """status -> [(key, backend, turns)]."""
    out: dict[str, list[tuple[str, str | None, int]]] = {}
    with sqlite3.connect(db) as conn:
        for key, status, backend, turns in conn.execute(
                "SELECT c.key, c.status, c.backend, count(t.id) FROM cells c LEFT JOIN turns t ON t.cell_id = c.id "
                "GROUP BY c.id"):
            out.setdefault(status, []).append((key, backend, turns))
    return out


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: connections are refused


def test_cells_spread_over_two_servers_exactly_once(exp_file):
    seen: list[str] = []
    with StubServer(SCRIPT) as a, StubServer(SCRIPT) as b:
        outcome = _run(exp_file, [a.url, b.url], on_cell=lambda c, t: seen.append(c.key))
    cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
    assert set(cells) == {"done"} and len(cells["done"]) == N_CELLS == len(seen) == len(set(seen))
    assert all(turns == 1 for _, _, turns in cells["done"])
    assert {backend for _, backend, _ in cells["done"]} == {a.url, b.url}
    assert outcome.ran == N_CELLS and not outcome.interrupted and outcome.failed_servers == {}
    assert sorted(outcome.backends) == sorted([a.url, b.url]) and sum(outcome.backends.values()) == N_CELLS
    with sqlite3.connect(exp_file.with_suffix(".sqlite")) as conn:
        flags = {r[0] for r in conn.execute("SELECT truncated FROM tokens WHERE scope = 'generated'")}
        status = conn.execute("SELECT status FROM runs").fetchone()[0]
    assert flags == {1} and status == "done"


def test_interrupted_pool_run_resumes_without_duplicates_or_gaps(exp_file):
    seen: list[str] = []
    with StubServer(SCRIPT) as a, StubServer(SCRIPT) as b:
        first = _run(exp_file, [a.url, b.url], on_cell=lambda c, t: seen.append(c.key),
                     should_stop=lambda: len(seen) >= 5)
        cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
        assert first.interrupted and first.ran == len(seen) >= 5 and len(cells["pending"]) > 0
        assert sorted(k for k, _, _ in cells["done"]) == sorted(seen)  # nothing half-stored
        second = _run(exp_file, [a.url, b.url], on_cell=lambda c, t: seen.append(c.key))
    assert second.already == first.ran and not second.interrupted
    cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
    assert set(cells) == {"done"} and len(cells["done"]) == N_CELLS and all(t == 1 for _, _, t in cells["done"])
    assert len(seen) == len(set(seen)) == N_CELLS


def _failing_after(n: int):
    """open_engine whose server stops answering after `n` completions."""
    def open_failing(url: str):
        engine = open_engine(url)
        complete, calls = engine.complete, []

        def failing(request, **options):
            calls.append(1)
            if len(calls) > n:
                raise RemoteError("cannot reach the server: connection reset", where=url + "/completion")
            return complete(request, **options)

        engine.complete = failing
        return engine
    return open_failing


def test_server_failing_mid_run_leaves_its_cell_pending_then_resume_completes(exp_file):
    with StubServer(SCRIPT) as a:
        first = _run(exp_file, [a.url], open_engine=_failing_after(3))
        assert list(first.failed_servers) == [a.url] and "connection reset" in first.failed_servers[a.url]
        cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
        assert 1 <= len(cells["done"]) <= 3 and "error" not in cells
        assert len(cells["pending"]) == N_CELLS - len(cells["done"])
        second = _run(exp_file, [a.url])
    assert second.already == first.ran and second.ran == N_CELLS - first.ran and not second.failed_servers
    cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
    assert set(cells) == {"done"} and all(t == 1 for _, _, t in cells["done"])


def test_dead_server_is_one_line_and_the_other_finishes_every_cell(exp_file, capsys):
    dead = _dead_url()
    db = exp_file.with_suffix(".sqlite")
    with StubServer(SCRIPT) as a:
        code = main(["run", str(exp_file), "--db", str(db), "--backend", f"{a.url},{dead}", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    error = [line for line in captured.err.splitlines() if line.startswith("harness: error:")]
    assert len(error) == 1 and dead in error[0] and "cannot reach" in error[0]
    out = json.loads(captured.out)
    assert out["outcome"]["backends"] == {a.url: N_CELLS} and list(out["outcome"]["failed_servers"]) == [dead]
    cells = _cells_by_status(db)
    assert set(cells) == {"done"} and {b for _, b, _ in cells["done"]} == {a.url}


def test_only_dead_servers_leave_every_cell_pending_and_say_how_to_resume(exp_file, capsys):
    dead = _dead_url()
    db = exp_file.with_suffix(".sqlite")
    assert main(["run", str(exp_file), "--db", str(db), "--backend", dead]) == 1
    err = capsys.readouterr().err
    assert f"server {dead} failed; {N_CELLS} cells left pending" in err and f"--backend {dead}" in err
    assert set(_cells_by_status(db)) == {"pending"}
    with StubServer(SCRIPT) as a:
        assert main(["run", str(exp_file), "--db", str(db), "--backend", a.url]) == 0
    assert set(_cells_by_status(db)) == {"done"}


def test_a_template_the_server_cannot_use_is_a_cell_error_with_its_server(exp_file):
    exp_file.write_text(EXPERIMENT.replace("[gguf, chatml]", "[chatml, no-such-template]"))
    with StubServer(SCRIPT) as a:
        outcome = _run(exp_file, [a.url])
    cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
    assert outcome.errors == len(cells["error"]) == N_CELLS // 2 == len(cells["done"])
    assert {b for _, b, _ in cells["error"]} == {a.url}


@pytest.mark.parametrize("change, message", [
    ("models: [{name: fake, label: fake}, smollm2]", "runs one model"),
    ("models: [fake]\nliteral_content: true", "literal_content needs a local model"),
])
def test_experiments_a_pool_cannot_run_are_refused_before_anything_runs(exp_file, capsys, change, message):
    exp_file.write_text(EXPERIMENT.replace("models: [{name: fake, label: fake}]", change))
    db = exp_file.with_suffix(".sqlite")
    assert main(["run", str(exp_file), "--db", str(db), "--backend", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error:") and message in err and "\n" not in err and not db.exists()


def test_a_schema_1_database_gains_the_backend_and_decode_columns(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as old:
        old.executescript(SCHEMA.replace("    backend TEXT,\n", "").replace(",\n    decode TEXT\n", "\n"))
        old.execute("PRAGMA user_version=1")
    conn = connect(db)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(cells)")}
    run_columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert "backend" in columns and "decode" in run_columns and version == SCHEMA_VERSION == 4


_BOUNDS = "    entropy_lo REAL,\n    entropy_hi REAL,\n    eot_prob_lo REAL,\n    eot_prob_hi REAL,\n"


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_database_gains_the_bounds_columns_and_keeps_its_tokens(tmp_path, version):
    # 3 is main's schema with the runs' decode column and no bounds; 2 has neither
    db = tmp_path / "old.sqlite"
    assert _BOUNDS in SCHEMA
    old_schema = SCHEMA.replace(_BOUNDS, "")
    if version == 2:
        assert ",\n    decode TEXT\n" in old_schema
        old_schema = old_schema.replace(",\n    decode TEXT\n", "\n")
    with sqlite3.connect(db) as old:
        old.executescript(old_schema)
        old.execute("INSERT INTO tokens (turn_id, scope, pos, token_id, piece, role, entropy_bits, top)"
                    " VALUES (1, 'generated', 0, 42, 'hi', 'assistant', 1.5, '[]')")
        old.execute(f"PRAGMA user_version={version}")
    conn = connect(db)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tokens)")}
    run_columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    kept = conn.execute("SELECT token_id, entropy_bits, entropy_lo FROM tokens").fetchall()
    new_version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    assert {"entropy_lo", "entropy_hi", "eot_prob_lo", "eot_prob_hi"} <= columns and "decode" in run_columns
    assert kept == [(42, 1.5, None)] and new_version == 4


def test_a_server_run_stores_bounds_that_summary_and_report_carry(exp_file, tmp_path, capsys):
    db = exp_file.with_suffix(".sqlite")
    with StubServer(SCRIPT) as a:
        assert main(["run", str(exp_file), "--db", str(db), "--backend", a.url]) == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT entropy_bits, entropy_lo, entropy_hi, eot_prob, eot_prob_lo, eot_prob_hi"
                            " FROM tokens WHERE scope = 'generated'").fetchall()
    assert rows and all(lo <= h <= hi and elo == e <= ehi for h, lo, hi, e, elo, ehi in rows)
    capsys.readouterr()
    assert main(["summary", str(db), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    generated = [r for r in summary if r["scope"] == "generated"]
    assert generated and all(r["entropy_bounds_bits"][0] <= r["mean_entropy_bits"] <= r["entropy_bounds_bits"][1]
                             for r in generated)
    assert main(["summary", str(db)]) == 0
    assert "model H from a server's top-k" in capsys.readouterr().out
    page = tmp_path / "report.html"
    assert main(["report", str(db), "--html", str(page)]) == 0
    assert "bounds from the top-k" in page.read_text()


def test_a_stop_does_not_wait_forever_for_a_server_that_hangs(exp_file, monkeypatch):
    monkeypatch.setattr(experiment_pool, "STOP_GRACE_SECONDS", 0.3)
    release = threading.Event()

    def hanging(url: str):
        release.wait(30)  # a connect that never completes
        raise RemoteError("cannot reach the server: timed out", where=url)

    outcome = _run(exp_file, ["http://10.255.255.1:9"], open_engine=hanging, should_stop=lambda: True)
    still_hanging = not release.is_set()  # the run returned while the server still hung
    release.set()
    assert still_hanging and outcome.interrupted and outcome.ran == 0
    assert set(_cells_by_status(exp_file.with_suffix(".sqlite"))) == {"pending"}


def _slow(stub: StubServer, seconds: float) -> StubServer:
    """Each streamed token of `stub` takes `seconds`."""
    completion = stub.model.completion

    def slow(body):
        for chunk in completion(body):
            time.sleep(seconds)
            yield chunk

    stub.model.completion = slow
    return stub


def _done_count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM cells WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_ctrl_c_drops_cells_in_flight_and_prints_the_resume_command(exp_file):
    db = exp_file.with_suffix(".sqlite")
    with StubServer(SCRIPT) as a, StubServer(SCRIPT) as b:
        urls = f"{_slow(a, 0.05).url},{_slow(b, 0.05).url}"
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(exp_file), "--db", str(db),
                                 "--backend", urls], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _done_count(db) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "resume with: harness run" in err and f"--backend {urls}" in err
        cells = _cells_by_status(db)
        assert len(cells["done"]) >= 2 and cells["pending"] and all(t == 1 for _, _, t in cells["done"])
        assert main(["run", str(exp_file), "--db", str(db), "--backend", urls]) == 0
    cells = _cells_by_status(db)
    assert set(cells) == {"done"} and len(cells["done"]) == N_CELLS and all(t == 1 for _, _, t in cells["done"])


def _generated_tokens(db: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT c.key, k.pos, k.token_id, k.entropy_bits, k.surprisal_bits, k.entropy_lo,"
                            " k.entropy_hi FROM tokens k JOIN turns t ON t.id = k.turn_id"
                            " JOIN cells c ON c.id = t.cell_id WHERE k.scope = 'generated' ORDER BY c.key, k.pos")
        out: dict[str, list[tuple]] = {}
        for key, *rest in rows:
            out.setdefault(key, []).append(tuple(rest))
    return out


def test_parallel_cells_on_one_server_run_at_once_with_the_serial_statistics(exp_file, tmp_path):
    serial_file = tmp_path / "serial.yaml"
    serial_file.write_text(EXPERIMENT)
    with StubServer(SCRIPT, slots=3, token_seconds=0.03) as a:
        _run(serial_file, [a.url])
        assert a.model.most_in_flight == 1
        outcome = _run(exp_file, [a.url], parallel=3)
        assert a.model.most_in_flight >= 2  # 3 when the machine is idle
    cells = _cells_by_status(exp_file.with_suffix(".sqlite"))
    assert set(cells) == {"done"} and len(cells["done"]) == N_CELLS and all(t == 1 for _, _, t in cells["done"])
    assert {b for _, b, _ in cells["done"]} == {a.url} and outcome.backends == {a.url: N_CELLS}
    assert _generated_tokens(exp_file.with_suffix(".sqlite")) == _generated_tokens(serial_file.with_suffix(".sqlite"))


def test_parallel_needs_a_backend(exp_file, capsys):
    assert main(["run", str(exp_file), "--parallel", "2"]) == 1
    assert "--backend" in capsys.readouterr().err
