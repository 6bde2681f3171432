"""Issue 13, class 6: `report` and `summary` read a database read-only and refuse one that is not
harness's schema or that carries code (generated columns, triggers, views)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3

import pytest

from harness.cli.main import main
from tests.support.measured import run_python
from tests.support.runs import make_db, swell_turn


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("trust-db"))


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_summary_and_report_change_nothing(db, tmp_path, capsys):
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db, copy)
    before = (_digest(copy), sorted(p.name for p in tmp_path.iterdir()))
    assert main(["summary", str(copy)]) == 0
    assert main(["report", str(copy), "--html", str(tmp_path / "out" / "r.html")]) == 0
    capsys.readouterr()
    assert _digest(copy) == before[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == before[1]  # no -wal, no -shm


def test_a_foreign_database_is_refused_and_left_alone(tmp_path, capsys):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes VALUES (1, 'mine')")
    conn.close()
    before = _digest(foreign)
    for args in (["summary", str(foreign)], ["report", str(foreign), "--html", str(tmp_path / "r.html")]):
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "not a harness experiment database" in err and len(err.splitlines()) == 1
    assert _digest(foreign) == before
    with sqlite3.connect(foreign) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def _hostile(db, tmp_path, statements: list[str]):
    path = tmp_path / "hostile.sqlite"
    shutil.copy(db, path)
    conn = sqlite3.connect(path, isolation_level=None)
    for sql in statements:
        conn.execute(sql)
    conn.close()
    return path


BOMB = "printf('%.*c', 900000000, 'x')"


@pytest.mark.parametrize("statements, said", [
    (["ALTER TABLE tokens ADD COLUMN boom TEXT GENERATED ALWAYS AS (" + BOMB + ") VIRTUAL"], "columns"),
    (["CREATE VIEW v AS SELECT " + BOMB], "view"),
    (["CREATE TRIGGER t AFTER INSERT ON runs BEGIN SELECT " + BOMB + "; END"], "trigger"),
    (["CREATE TABLE extra (x)"], "table 'extra'"),
], ids=["generated-column", "view", "trigger", "unknown-table"])
def test_code_in_the_schema_is_refused(db, tmp_path, statements, said):
    path = _hostile(db, tmp_path, statements)
    code = (f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({2**30 + 2**29}, -1));"
            "from harness.cli.main import main; sys.exit(main(['summary', sys.argv[1]]))")
    proc = run_python(code, [str(path)], timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "not a harness experiment database" in proc.stderr and said in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.peak_kib is not None and proc.peak_kib < 1024 * 1024  # this child's own peak, KiB: < 1 GB


def test_names_from_the_database_reach_the_terminal_visibly(db, tmp_path, capsys):
    path = _hostile(db, tmp_path, ["UPDATE runs SET name = char(27) || ']0;pwned' || char(7) || 'run'",
                                   "UPDATE cells SET model = char(155) || '31mmodel'"])
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out and "␛]0;pwned␇run" in out


def test_a_report_reads_what_it_shows_of_a_huge_turn(db, tmp_path):
    """Issue 26, finding 6: a shown turn's generated tokens were all loaded (MemoryError at
    3.7 GB on a 711 MB database); now at most MAX_GENERATED_TOKENS of it, the rest counted."""
    from harness.experiment.db import connect, load_turns
    from harness.report.html import MAX_GENERATED_TOKENS

    path = swell_turn(db, tmp_path / "swollen.sqlite", 150_000)
    conn = connect(path)
    turns = load_turns(conn, 1, shown=1, prompt_tail=10, generated_cap=MAX_GENERATED_TOKENS)
    conn.close()
    first = next(t for t in turns if t["generated_total"])
    assert first["generated_total"] == 150_000 and len(first["tokens"]) == MAX_GENERATED_TOKENS
    assert len(first["prompt_tokens"]) <= 10 and all(not t["tokens"] for t in turns[1:])
    code = ("import sys; from harness.cli.main import main; "
            "sys.exit(main(['report', sys.argv[1], '--html', sys.argv[2]]))")
    plain = run_python(code, [str(db), str(tmp_path / "a.html")], timeout=300)
    huge = run_python(code, [str(path), str(tmp_path / "b.html")], timeout=300)
    assert (plain.returncode, huge.returncode) == (0, 0), huge.stderr
    assert "later generated tokens not shown" in (tmp_path / "b.html").read_text(encoding="utf-8")
    assert (huge.peak_kib - plain.peak_kib) / 1024 < 400  # MiB; every token loaded: well over 1 GB
