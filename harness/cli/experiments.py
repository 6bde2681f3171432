"""`harness run EXPERIMENT.yaml`, `harness summary DB` and `harness report DB|LOG`: the
entropy lab's commands.

Progress and notices go to stderr, the summary table (or ``--json``) to stdout. Ctrl-C stops
after dropping the cell in flight and prints how to resume (exit 130).
"""

from __future__ import annotations

import argparse
import shlex
import sqlite3
from pathlib import Path
from typing import Any

from harness.errors import CommandError, HarnessError, RemoteError, StorageError
from harness.paths import data_dir
from harness.untrusted.terminal import message, stderr, write, write_json

EXIT_INTERRUPTED = 130


def default_db(experiment: Path) -> Path:
    return data_dir() / "experiments" / f"{experiment.stem}.sqlite"


def _resume_command(args: argparse.Namespace, db: Path) -> str:
    backend = f" --backend {shlex.quote(args.backend)}" if getattr(args, "backend", None) else ""
    if getattr(args, "parallel", 1) != 1:
        backend += f" --parallel {args.parallel}"
    folders = "".join(f" --files-from {shlex.quote(d)}" for d in getattr(args, "files_from", []))
    return f"harness run {shlex.quote(args.experiment)} --db {shlex.quote(str(db))}{backend}{folders}"


def cmd_run(args: argparse.Namespace) -> int:
    from harness.experiment.db import connect, open_run, run_info
    from harness.experiment.progress import Progress, format_duration
    from harness.experiment.spec import expand, load_experiment

    exp = load_experiment(args.experiment, files_from=tuple(Path(d).expanduser() for d in args.files_from))
    urls = _backend_urls(args, exp)
    cells = expand(exp)
    db = Path(args.db).expanduser() if args.db else default_db(Path(args.experiment))
    decode = {"servers": "decode path of the server (not controlled by harness)"} if urls else _decode(exp)
    conn = connect(db)
    try:
        run_id, resumed = open_run(conn, exp, cells, force_new=args.force_new, decode=decode)
        info = run_info(conn, run_id)
        finished = info["cells"].get("done", 0) + info["cells"].get("error", 0)
        verb = f"resuming run {run_id} ({finished} of {len(cells)} cells finished)" if resumed \
            else f"run {run_id}: {len(cells)} cells"
        where = f" on {len(urls)} server{'s' * (len(urls) > 1)}" if urls else ""
        message(f"{exp.name}: {verb}{where} -> {db}")
        progress = Progress(len(cells), finished, stderr())
        outcome = _execute(exp, conn, run_id, cells, urls, progress, getattr(args, "parallel", 1))
        done = outcome.already + outcome.ran + outcome.errors
        if outcome.interrupted:
            message(f"interrupted after {done} of {outcome.total} cells; resume with: {_resume_command(args, db)}")
            return EXIT_INTERRUPTED
        message(f"{outcome.ran + outcome.errors} cells in {format_duration(outcome.seconds)} "
                f"({outcome.cells_per_minute:.1f} cells/min); {outcome.already} already finished"
                + (f"; {outcome.errors} failed" if outcome.errors else ""))
        if done == outcome.total:
            _print_summary(conn, run_id, db, args.json, outcome.to_dict())
        if outcome.failed_servers:
            raise _servers_failed(outcome.failed_servers, outcome.total - done, _resume_command(args, db))
        return 1 if run_info(conn, run_id)["cells"].get("error") else 0
    except sqlite3.Error as exc:  # the cell in flight was rolled back: the database is consistent
        full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        raise StorageError("the disk is full" if full else f"the database failed: {exc}", where=str(db),
                           hint=f"free some space, then resume with: {_resume_command(args, db)}") from None
    finally:
        conn.close()


def _decode(exp) -> dict:
    from harness.experiment.run import decode_settings

    return decode_settings(exp)


def _backend_urls(args: argparse.Namespace, exp) -> list[str]:
    """The servers of `--backend` (none: run locally), checked before anything is stored."""
    from harness.backends.servers import parse_backend, split_backends
    from harness.experiment.pool import pool_model

    parallel = getattr(args, "parallel", 1)
    if parallel < 1:
        raise CommandError("--parallel must be at least 1")
    if not getattr(args, "backend", None):
        if parallel != 1:
            raise CommandError("--parallel runs cells at once on servers: give --backend URL",
                               hint="a local run decodes cells sharing a prompt together (the experiment's batch:)")
        return []
    pool_model(exp)
    urls = split_backends(args.backend)
    for url in urls:
        parse_backend(url)
    if len(set(urls)) != len(urls):
        raise CommandError("--backend names the same server twice", hint="give each URL once")
    return urls


def _execute(exp, conn, run_id: int, cells, urls: list[str], progress, parallel: int = 1):
    from harness.experiment.pool import run_cells_remote
    from harness.experiment.run import run_cells
    from harness.interrupt import sigint_flag

    with sigint_flag() as interrupted:
        if not urls:
            return run_cells(exp, conn, run_id, cells, should_stop=interrupted, progress=progress,
                             on_error=_warn_once(), on_notice=_notice)
        return run_cells_remote(exp, conn, run_id, cells, urls, should_stop=interrupted, progress=progress,
                                on_error=_warn_once(), on_notice=_server_notice, parallel=parallel)


def _notice(text: str) -> None:
    write(stream=stderr())  # off the progress line
    message(text)


def _server_notice(url: str, text: str) -> None:
    _notice(f"{url}: {text}")


def _servers_failed(failed: dict[str, str], pending: int, resume: str) -> HarnessError:
    """One line for the servers dropped during a run (the first one's reason)."""
    url, reason = next(iter(failed.items()))
    who = f"server {url} failed" if len(failed) == 1 else f"{len(failed)} servers failed (first {url})"
    if not pending:
        return RemoteError(f"{who}; the other servers finished every cell: {reason}")
    return RemoteError(f"{who}; {pending} cells left pending: {reason}", hint=f"resume with: {resume}")


def _warn_once():
    """A cell-error callback printing each distinct message once (many cells share a cause)."""
    seen: set[str] = set()

    def on_error(cell, message: str) -> None:
        if message not in seen:
            seen.add(message)
            _notice(f"warning: cell {cell.key}: {message}")

    return on_error


def cmd_summary(args: argparse.Namespace) -> int:
    import sqlite3

    from harness.experiment.db import resolve_run
    from harness.experiment.db_guard import open_readonly, read_error

    db = Path(args.db).expanduser()
    conn = open_readonly(db)  # someone else's file: read-only, checked, bounded
    try:
        run_id = resolve_run(conn, args.run, str(db))
        if args.compare:
            _print_comparison(conn, run_id, db, args)
        else:
            _print_summary(conn, run_id, db, args.json, None, markdown=args.markdown)
    except sqlite3.Error as exc:
        raise read_error(exc, str(db)) from None
    finally:
        conn.close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the HTML report of a run (or a chat log); one line on stderr says where."""
    from harness.atomic import write_text
    from harness.report.html import ReportOptions, render_report
    from harness.report.sources import load_report_input

    if args.max_turns < 0:
        raise CommandError("--max-turns must be 0 or more")
    source = load_report_input(args.source, args.run, shown=args.max_turns)
    page = render_report(source.turns, source.summary,
                         ReportOptions(source.title, source.detail, max_turns=args.max_turns,
                                       choices=source.choices))
    write_text(args.html, page)
    shown = min(len(source.turns), args.max_turns)
    message(f"report of {len(source.turns)} turns ({shown} in the transcript) -> {args.html} "
            f"({len(page.encode('utf-8')) / 1024:.0f} KB)")
    return 0


def _print_comparison(conn, run_id: int, db: Path, args: argparse.Namespace) -> None:
    from harness.experiment.compare import compare_conditions, format_comparison, resolve_condition
    from harness.experiment.db import token_stats

    if args.first_k < 1:
        raise CommandError("--first-k must be 1 or more")
    stats = token_stats(conn, run_id)
    labels = list(dict.fromkeys(t.condition for t in stats))
    a, b = (resolve_condition(labels, q) for q in args.compare)
    data = compare_conditions(stats, a, b, metric=args.metric, first_k=args.first_k, swapped=args.swapped)
    if args.json:
        write_json({"db": str(db), "run": run_id, "compare": data}, indent=1)
    else:
        write(format_comparison(data))


def _verdict(path: Any) -> str:
    """How a stored decode path reads in the summary (the database is data: anything may be there)."""
    verdict = path.get("invariant") if isinstance(path, dict) else None
    if verdict is True:
        return "batch-invariant"
    if verdict is False:
        return "NOT batch-invariant (values may depend on batching)"
    return "invariance unknown"


def _print_summary(conn, run_id: int, db: Path, as_json: bool, outcome: dict[str, Any] | None,
                   markdown: bool = False) -> None:
    from harness.experiment.db import choice_rows, run_info, summary
    from harness.experiment.summary_table import LEGEND, format_markdown, format_table

    info = run_info(conn, run_id)
    rows = summary(conn, run_id)
    choices = choice_rows(conn, run_id)
    if as_json:
        out = {"db": str(db), "run": info, "summary": [r.to_dict() for r in rows]}
        if choices:
            out["choices"] = choices
        if outcome is not None:
            out["outcome"] = outcome
        write_json(out, indent=1)
        return
    cells = ", ".join(f"{n} {status}" for status, n in sorted(info["cells"].items()))
    write(f"run {run_id} of {info['name']} ({info['status']}; {cells}) in {db}", one_line=True)
    if info["decode"]:
        paths = ", ".join(f"{label} {_verdict(path)}" for label, path in sorted(info["decode"].items()))
        write(f"decode path (batch {info['batch']}): {paths}", one_line=True)
    write(LEGEND)
    write(format_markdown(rows) if markdown else format_table(rows))  # names come from the file
    for c in choices:
        cal = c["calibration"]
        write(f"multiple choice: {c['condition']}: {c['items']} items, accuracy {c['accuracy']:.3f}, "
              f"mean confidence {c['mean_confidence']:.3f}, ECE {cal['ece']:.3f} (a perfectly calibrated "
              f"model with these confidences: {cal['ece_null']:.3f}, 95th percentile "
              f"{cal['ece_null_p95']:.3f}), letters took {c['mean_letter_mass']:.3f} of the probability")
    for err in info["errors"]:
        write(f"error: {err['cell']}: {err['error']}", one_line=True)


def cmd_score_text(args: argparse.Namespace) -> int:
    """`score --text F`: raw text, no template; per-role lines (or JSON) and the perplexity."""
    from harness.cli.score_reference import merge_reference, print_reference
    from harness.generation.records import role_summary_lines, score_json
    from harness.generation.text_score import perplexity, score_text
    from harness.models.registry import open_backend

    if args.backend:
        raise CommandError("score --text needs a local --model")
    if args.template or args.var or args.literal_content:
        raise CommandError("score --text takes raw text: --template, --var and --literal-content do not apply")
    from harness.untrusted.inputs import read_text

    text = read_text(args.text, what="the text", error=CommandError)
    backend = open_backend(args.model, n_ctx=args.n_ctx or 4096, n_threads=args.threads)
    try:
        tokens = score_text(backend, text)

        def name_of(token: int) -> str:
            return backend.piece(token).decode("utf-8", "replace")

        ppl = perplexity(tokens)
        extra = {}
        if args.reference:
            from harness.cli.score_reference import score_against_reference
            from harness.generation.text_score import TEXT, encode_text

            extra = score_against_reference(args.reference, args.threads, backend, tokens, text=text, segments=[],
                                            encode=lambda b: encode_text(b, text), default_role=TEXT)
        if args.json:
            write_json(merge_reference(score_json(text, tokens, name_of) | ppl, extra))
            return 0
        for line in role_summary_lines(tokens):
            write(line)
        write(f"perplexity {ppl['perplexity']:.4f} over {ppl['scored_tokens']} scored tokens "
              f"(exp of the mean NLL, {ppl['mean_nll_nats']:.4f} nats)")
        print_reference(extra)
    finally:
        backend.close()
    return 0
