"""Mutate real harness files and run harness on each mutant in a subprocess (figures for docs/reliability.md).

Seeds are files harness itself wrote or ships: a saved session and its chat log (a real REPL
turn on the fake model), the bundled profiles, a messages file, an experiment file and the
experiment database of a run. Each mutant swaps types, removes fields, makes the session tree
cyclic, adds YAML alias bombs and cyclic anchors, huge values, deep nesting, lone surrogates,
terminal escapes, hostile paths ("log": "~/.bashrc"), or cuts and flips bytes. Then the
command that reads that kind of file runs in a child (1.5 GiB address-space limit, 60 s):

    session     harness chat --resume FILE   (a scripted REPL: /messages /tokens /alts /sessions
                                               /set /export, a message, /retry, /undo)
    log         harness chat --resume FILE.jsonl, harness report FILE.jsonl --html ...
    profile     harness generate --profile FILE --messages ...
    messages    harness render --show ..., harness generate --json --messages FILE
    experiment  harness run FILE --db ...
    database    harness summary DB, harness report DB --html ...

Models are the shipped FakeBackend (patched in for `open_backend`), so nothing waits on
llama.cpp. Counted per case: exit 0, a one-line error (exit 1, one stderr line, no traceback),
tracebacks, other exits, timeouts, the child's peak RSS, raw control characters on stderr, and
files written or changed outside the data directory (a fake $HOME with a .bashrc, the working
directory, the inputs' folder).

    python bench/stress_files.py [--quick] [--seed 0] [--per-seed N]   (6 per kind: ~3.5 min)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD_LIMIT = 3 * 2**29  # 1.5 GiB of address space per child
CASE_SECONDS = 60
ESCAPE = "\x1b]0;pwned\x07\x1b[2J\x9b31m"
SCRIPT = ["/messages", "/tokens", "/alts 0", "/sessions", "/sessions 3", "/set temperature 0.5",
          "/export {data}/export.md", "/export {data}/export.json", "hello there", "/retry", "/undo"]


# -- the child: harness with the fake model and a scripted REPL ----------------------------------
def child(argv: list[str]) -> int:
    from harness.backends.fake import FakeBackend
    from harness.models import registry

    registry.open_backend = lambda *a, **k: FakeBackend("Hi there!<|im_end|>")

    import harness.repl.chat as chat
    from harness.chat.dispatch import handle
    from harness.repl.display import Display

    def scripted_repl(session, history_path=None):
        from prompt_toolkit.output import DummyOutput

        display = Display(DummyOutput(), session.prefs)
        data = os.environ["HARNESS_HOME"]
        for line in SCRIPT:
            handle(session, line.format(data=data), display.emit, lambda: False)
        session.save(display.emit)
        return 0

    chat.run_repl = scripted_repl
    from harness.cli.main import main

    return main(argv)


# -- seeds ---------------------------------------------------------------------------------------
MESSAGES = ("- role: system\n  content: Be brief.\n- role: user\n  content: Hello there\n"
            "- role: assistant\n  content: Hi!\n- role: user\n  name: bob\n  content: How are you?\n")
EXPERIMENT = """name: stress
models: [smollm2]
templates: [chatml]
modes: [reply]
seeds: [1]
max_tokens: 4
sampling: {greedy: {temperature: 0}}
conversations:
  - {name: a, messages: [{role: user, content: Hi}]}
"""


def make_seeds(folder: Path) -> dict[str, Any]:
    """Real files: a session and log from a REPL turn, profiles, messages, experiment, database."""
    os.environ["HARNESS_HOME"] = str(folder / "seed-home")
    from harness.backends.fake import FakeBackend
    from harness.chat.saved import SessionFile
    from harness.chat.session import Session
    from harness.chat.session_io import SessionIO
    from harness.experiment.db import connect, open_run
    from harness.experiment.run import run_cells
    from harness.experiment.spec import expand, parse_experiment
    from harness.generation.settings import SamplingParams
    from harness.generation.workbench import Workbench
    from harness.prompt.templates import load_template
    from harness.turn_log import TurnLog
    from tests.support.replkit import drive

    backend = FakeBackend("Hi there, friend!<|im_end|>")
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    log = TurnLog(folder / "seed-home" / "logs" / "chat-seed.jsonl")
    session = Session(bench, params=SamplingParams(temperature=0.7, max_tokens=12), template_spec="chatml",
                      model_spec="smollm2", io=SessionIO(log, SessionFile("seed")))
    drive(session, "Hello!\r/retry\r/branch 0 2\r")
    session.io.log.close()
    exp = parse_experiment(EXPERIMENT, where="stress.yaml", base=folder)
    cells = expand(exp)
    db = folder / "seed.sqlite"
    conn = connect(db)
    run_id, _ = open_run(conn, exp, cells)
    run_cells(exp, conn, run_id, cells, open_backend=lambda model, threads: FakeBackend("Hi <b> & bye!"))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {
        "session": session.io.autosave.path.read_text(encoding="utf-8"),
        "log": session.io.log.path.read_text(encoding="utf-8"),
        "profile": [p.read_text(encoding="utf-8") for p in sorted((ROOT / "profiles").glob("*.yaml"))],
        "messages": MESSAGES,
        "experiment": EXPERIMENT,
        "database": db,
    }


# -- mutations -----------------------------------------------------------------------------------
def _paths(value: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:50]):
            out += _paths(item, (*at, i))
    return out


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = [value]
    return value


SWAPS = [None, True, -1, 99, 2**70, 1e308, "hot", "", [], {}, ["x"], {"x": 1}, "\ud800", ESCAPE,
         "~/.bashrc", "../../../outside.jsonl", "x" * 2_000_000, list(range(200_000))]


def mutate_data(data: Any, rng: random.Random) -> tuple[str, Any]:
    data = copy.deepcopy(data)
    paths = _paths(data)
    path = rng.choice(paths)
    op = rng.choice(["swap", "swap", "remove", "surrogate", "escape", "deep", "cycle", "path"])
    if op == "remove" and path:
        parent = _get(data, path[:-1])
        del parent[path[-1]]
        return f"remove {path[-1]}", data
    if op in ("surrogate", "escape"):
        strings = [p for p in paths if isinstance(_get(data, p), str)]
        if strings:
            path = rng.choice(strings)
            text = _get(data, path)
            cut = rng.randint(0, len(text))
            return op, _set(data, path, text[:cut] + ("\ud800" if op == "surrogate" else ESCAPE) + text[cut:])
    if op == "deep":
        return "deep", _set(data, path, _deep(rng.choice([200, 5000])))
    if op == "cycle" and isinstance(data, dict) and isinstance(data.get("tree"), dict):
        nodes = data["tree"].get("nodes") or []
        if len(nodes) > 1:
            node = rng.choice(nodes[1:])
            ancestor = rng.choice([n["id"] for n in nodes])
            node["children"] = [*node.get("children", []), ancestor]
            node["chosen"] = ancestor if rng.random() < 0.5 else rng.choice([ancestor, 99, -1])
            return "cycle", data
    if op == "path" and isinstance(data, dict):
        key = rng.choice(["log", "id", "model_spec", "template_spec", "profile"])
        data[key] = rng.choice(["~/.bashrc", "/etc/passwd", "../../../outside", "../x.jsonl", ESCAPE])
        return f"path {key}", data
    return f"swap {path[-1] if path else 'root'}", _set(data, path, rng.choice(SWAPS))


def mutate_yaml(text: str, rng: random.Random) -> tuple[str, str]:
    """Text-level mutations only YAML has (aliases, anchors), and byte-level ones for any text."""
    lines = text.splitlines()
    op = rng.choice(["bomb", "cycle", "truncate", "flip", "duplicate", "tab", "escape-raw"])
    if op == "bomb":
        bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
        if text.lstrip().startswith("-"):  # a bare list: the bomb goes into a message's extra key
            return op, text.replace("- role: user\n", "- role: user\n  x:\n" + "".join(
                "    " + line + "\n" for line in bomb.splitlines()), 1)
        return op, text + "x_bomb:\n" + "".join("  " + line + "\n" for line in bomb.splitlines())
    if op == "cycle":
        if text.lstrip().startswith("-"):
            return op, text.replace("- role: user\n", "- &c role: user\n  self: *c\n", 1)
        return op, text + "x_cycle: &c {self: *c}\n"
    if op == "truncate":
        return op, text[: rng.randint(0, len(text))]
    if op == "flip":
        chars = list(text)
        for _ in range(rng.randint(1, 5)):
            chars[rng.randrange(len(chars))] = rng.choice(["\x00", "\ud800", "{", "[", ":", "&", "*", "\x1b", "\x9b"])
        return op, "".join(chars)
    if op == "duplicate" and lines:
        line = rng.choice(lines)
        return op, text + line + "\n"
    if op == "tab":
        return op, text.replace("  ", "\t", 1)
    return op, text.replace("Hi", "Hi" + ESCAPE, 1)


def _dump_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=True)  # lone surrogates as \ud800 escapes, as a file would


def mutants(seeds: dict[str, Any], rng: random.Random, per_seed: int) -> list[tuple[str, str, Any]]:
    """(kind, mutation, content) triples."""
    import yaml

    out: list[tuple[str, str, Any]] = []
    session = json.loads(seeds["session"])
    log_lines = seeds["log"].splitlines()
    for _ in range(per_seed):
        name, data = mutate_data(session, rng)
        out.append(("session", name, _dump_json(data)))
        turn = json.loads(rng.choice(log_lines))
        name, data = mutate_data(turn, rng)
        lines = list(log_lines)
        lines[-1] = _dump_json(data)
        out.append(("log", name, "\n".join(lines) + "\n"))
        for kind in ("profile", "messages", "experiment"):
            text = rng.choice(seeds[kind]) if isinstance(seeds[kind], list) else seeds[kind]
            if rng.random() < 0.5:
                name, data = mutate_data(yaml.safe_load(text), rng)
                try:
                    text = yaml.safe_dump(data, allow_unicode=False)
                except yaml.YAMLError:
                    text = _dump_json(data)
            else:
                name, text = mutate_yaml(text, rng)
            out.append((kind, name, text))
        out.append(("database", *mutate_db(seeds["database"], rng)))
    return out


DB_MUTATIONS = [
    ("generated column", "ALTER TABLE tokens ADD COLUMN boom TEXT GENERATED ALWAYS AS "
                         "(printf('%.*c', 900000000, 'x')) VIRTUAL"),
    ("view", "CREATE VIEW v AS SELECT printf('%.*c', 900000000, 'x')"),
    ("trigger", "CREATE TRIGGER t AFTER INSERT ON runs BEGIN SELECT 1; END"),
    ("foreign table", "CREATE TABLE notes (x)"),
    ("drop table", "DROP TABLE turns"),
    ("user_version", "PRAGMA user_version = 7"),
    ("wrong types", "UPDATE tokens SET entropy_bits = 'hot', top = 'not json'"),
    ("null top", "UPDATE tokens SET top = NULL"),
    ("escapes", f"UPDATE runs SET name = '{ESCAPE}'; UPDATE cells SET model = '{ESCAPE}'"),
    ("surrogate-ish bytes", "UPDATE turns SET text = CAST(x'ff fe ed' AS TEXT)".replace(" ", "", 2)),
    ("huge spec", "UPDATE runs SET spec = printf('%.*c', 20000000, '[')"),
]


def mutate_db(seed: Path, rng: random.Random) -> tuple[str, bytes]:
    name, sql = rng.choice(DB_MUTATIONS + [("bytes", "")])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "db.sqlite"
        shutil.copy(seed, path)
        if sql:
            conn = sqlite3.connect(path, isolation_level=None)
            with contextlib.suppress(sqlite3.Error):  # a mutation that does not apply is still a case
                conn.executescript(sql)
            conn.close()
        raw = bytearray(path.read_bytes())
        if not sql:
            for _ in range(rng.randint(1, 20)):
                raw[rng.randrange(100, len(raw))] = rng.randrange(256)
        return name, bytes(raw)


# -- running -------------------------------------------------------------------------------------
def commands(kind: str, file: Path, data: Path) -> list[list[str]]:
    messages = data / "ok-messages.yaml"
    if kind == "session":
        return [["chat", "--resume", str(file)]]
    if kind == "log":
        return [["chat", "--resume", str(file)], ["report", str(file), "--html", str(data / "r.html")]]
    if kind == "profile":
        return [["generate", "--profile", str(file), "--messages", str(messages), "--json"]]
    if kind == "messages":
        return [["render", "--template", "chatml", "--messages", str(file), "--show"],
                ["generate", "--messages", str(file), "--template", "chatml", "--json", "--max-tokens", "4"]]
    if kind == "experiment":
        return [["run", str(file), "--db", str(data / "run.sqlite")]]
    return [["summary", str(file)], ["report", str(file), "--html", str(data / "r.html")]]


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            out[str(path)] = (st.st_size, st.st_mtime_ns)
    return out


def run_child(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, int, bool]:
    """(exit status, stderr, peak RSS in KiB, timed out)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_LIMIT, CHILD_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, __file__, "--child", *argv], stdout=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd, preexec_fn=limit)
        timer = threading.Timer(CASE_SECONDS, lambda: proc.send_signal(signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak RSS
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return proc.returncode, text, usage.ru_maxrss, proc.returncode == -signal.SIGKILL


def classify(code: int, stderr: str, timed_out: bool) -> str:
    if timed_out:
        return "timeout"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    lines = [line for line in stderr.splitlines() if line.startswith("harness: error: ")]
    if code == 0:
        return "ok"
    if code == 1 and len(lines) == 1:
        return "one-line error"
    return f"exit {code}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 mutants per seed kind (~1.5 minutes)")
    parser.add_argument("--per-seed", type=int, default=None, help="mutants per seed kind (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_seed = args.per_seed or (3 if args.quick else 6)
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="stress-files-"))
    try:
        return run_all(root, rng, per_seed)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_all(root: Path, rng: random.Random, per_seed: int) -> int:
    seeds = make_seeds(root)
    home, cwd, data = root / "home", root / "cwd", root / "data"
    for folder in (home, cwd):
        folder.mkdir()
    (home / ".bashrc").write_text("# the user's own\n")
    env = {**os.environ, "HOME": str(home), "HARNESS_HOME": str(data), "PYTHONPATH": str(ROOT),
           "XDG_DATA_HOME": str(home / ".local" / "share"), "HARNESS_CACHE": os.environ.get(
               "HARNESS_CACHE", str(ROOT / ".cache"))}
    cases = mutants(seeds, rng, per_seed)
    counts: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    peak, outside, raw_controls, runs = 0, [], 0, 0
    t0 = time.monotonic()
    for index, (kind, name, content) in enumerate(cases):
        shutil.rmtree(data, ignore_errors=True)
        (data / "sessions").mkdir(parents=True)
        (data / "logs").mkdir()
        (data / "ok-messages.yaml").write_text(MESSAGES)
        suffix = {"session": ".json", "log": ".jsonl", "database": ".sqlite"}.get(kind, ".yaml")
        folder = {"session": data / "sessions", "log": data / "logs"}.get(kind, data)
        file = folder / f"case{index}{suffix}"
        if isinstance(content, bytes):
            file.write_bytes(content)
        else:
            file.write_bytes(content.encode("utf-8", "surrogatepass"))
        before = snapshot(root, data)
        for argv in commands(kind, file, data):
            code, stderr, rss, timed_out = run_child(argv, env, cwd)
            runs += 1
            verdict = classify(code, stderr, timed_out)
            counts[verdict] = counts.get(verdict, 0) + 1
            by_kind.setdefault(kind, {}).setdefault(verdict, 0)
            by_kind[kind][verdict] += 1
            peak = max(peak, rss)
            if any(c in stderr for c in "\x1b\x07\x08\x9b"):
                raw_controls += 1
            if verdict not in ("ok", "one-line error"):
                print(f"  {verdict}: {kind} / {name} / {' '.join(argv[:1])}\n    "
                      + "\n    ".join(stderr.strip().splitlines()[-4:]), file=sys.stderr)
        after = snapshot(root, data)
        changed = [p for p in after if before.get(p) != after[p]] + [p for p in before if p not in after]
        if changed:
            outside.append((kind, name, changed))
            print(f"  wrote outside the data directory: {kind} / {name}: {changed}", file=sys.stderr)
    seconds = time.monotonic() - t0
    print(f"{len(cases)} mutants, {runs} runs in {seconds:.0f} s")
    for kind, verdicts in by_kind.items():
        print(f"  {kind:10} " + ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())))
    print(f"runs: {', '.join(f'{n} {v}' for v, n in sorted(counts.items()))}")
    print(f"tracebacks {counts.get('traceback', 0)}, timeouts {counts.get('timeout', 0)}, "
          f"peak RSS {peak / 1024:.0f} MB, raw controls on stderr {raw_controls}, "
          f"writes outside the data directory {len(outside)}")
    bad = counts.get("traceback", 0) + counts.get("timeout", 0) + len(outside) + raw_controls
    bad += sum(n for v, n in counts.items() if v.startswith("exit"))
    return 1 if bad or peak > 1024 * 1024 else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    sys.exit(main())
