"""Running an experiment's cells against the database: resumable, interruptible, one model load.

Cells come ordered model → template → conversation (harness.experiment.spec.expand); each model is
opened once and its workbench keeps one prompt evaluator across templates and cells, so cells
sharing a prompt prefix reuse the KV cache. A cell is committed in one transaction when it
finishes; a cell cut short by `should_stop` (Ctrl-C) is dropped and runs again on resume.
A cell that cannot run (the template refuses the mode, the prompt does not fit) is stored as an
error and not retried by a resume.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from harness.backends.base import Backend
from harness.errors import (
    CommandError,
    ContextOverflowError,
    MessagesError,
    ModeError,
    TemplateError,
)
from harness.experiment.db import cell_status, commit_cell, fail_cell, set_run_status
from harness.experiment.progress import Progress
from harness.experiment.spec import Cell, Experiment, ModelSpec, condition_label
from harness.generation.records import tokens_json
from harness.generation.turn import StopReason
from harness.prompt.templates import ChatTemplate

CELL_ERRORS = (TemplateError, ModeError, ContextOverflowError, CommandError, MessagesError)

OpenBackend = Callable[[ModelSpec, int | None], Backend]
LoadTemplate = Callable[[str, Backend], ChatTemplate]


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    total: int
    already: int  # finished (done or error) before this process started
    ran: int  # committed by this process
    errors: int  # cells stored as errors by this process
    interrupted: bool
    seconds: float
    backends: Mapping[str, int] = field(default_factory=dict)  # server URL -> cells it finished
    failed_servers: Mapping[str, str] = field(default_factory=dict)  # server URL -> why it was dropped

    @property
    def cells_per_minute(self) -> float:
        return self.ran / self.seconds * 60.0 if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "total": self.total, "already_finished": self.already,
                "ran": self.ran, "errors": self.errors, "interrupted": self.interrupted,
                "seconds": round(self.seconds, 2), "cells_per_minute": round(self.cells_per_minute, 2),
                "backends": dict(self.backends), "failed_servers": dict(self.failed_servers)}


def default_open_backend(model: ModelSpec, threads: int | None) -> Backend:
    from harness.models.registry import open_backend

    return open_backend(model.source, n_ctx=model.n_ctx, n_threads=threads)


def default_load_template(spec: str, backend: Backend) -> ChatTemplate:
    from harness.generation.workbench import choose_template
    from harness.paths import user_templates_dir

    return choose_template(spec, backend.info.chat_template, backend.info.name, user_templates_dir())


def cell_turn(bench, cell: Cell, gen) -> dict[str, Any]:
    """What the database stores of one generation (token dicts exactly as the JSON gives them)."""
    return {"mode": cell.mode.label, "writer": gen.writer, "prompt": gen.prompt, "text": gen.text,
            "stop_reason": gen.stop_reason, "prompt_tokens": tokens_json(gen.prompt_tokens, bench.piece_text),
            "tokens": tokens_json(gen.tokens, bench.piece_text), "prompt_seconds": gen.prompt_seconds,
            "seconds": gen.seconds}


class _Runner:
    def __init__(self, exp: Experiment, conn: sqlite3.Connection, run_id: int, *,
                 should_stop: Callable[[], bool], progress: Progress | None,
                 on_cell: Callable[[Cell, dict[str, Any]], None] | None,
                 on_error: Callable[[Cell, str], None] | None,
                 open_backend: OpenBackend, load_template: LoadTemplate):
        self.exp, self.conn, self.run_id = exp, conn, run_id
        self.should_stop, self.progress = should_stop, progress
        self.on_cell, self.on_error = on_cell, on_error
        self.open_backend, self.load_template = open_backend, load_template
        self.conversations = {c.name: c.conversation for c in exp.conversations}
        self.models = {m.label: m for m in exp.models}
        self.ran = self.errors = 0
        self.interrupted = False

    def run(self, todo: Sequence[Cell]) -> None:
        for label, group in groupby(todo, key=lambda c: c.model):
            if self.should_stop():
                self.interrupted = True
                return
            self._run_model(self.models[label], list(group))
            if self.interrupted:
                return

    def _run_model(self, model: ModelSpec, cells: list[Cell]) -> None:
        from harness.generation.workbench import Workbench

        backend = self.open_backend(model, self.exp.threads)
        try:
            bench = None
            for template, group in groupby(cells, key=lambda c: c.template):
                group = list(group)
                try:
                    loaded = self.load_template(template, backend)
                    if bench is None:
                        bench = Workbench(backend, loaded)
                        bench.literal_content = self.exp.literal_content
                    else:
                        bench.set_template(loaded)
                except CELL_ERRORS as exc:
                    for cell in group:
                        self._fail(cell, str(exc))
                    continue
                for cell in group:
                    if self.should_stop():
                        self.interrupted = True
                        return
                    self._run_cell(bench, cell)
                    if self.interrupted:
                        return
        finally:
            backend.close()

    def _run_cell(self, bench, cell: Cell) -> None:
        started = time.perf_counter()
        try:
            plan = bench.plan(self.conversations[cell.conversation], cell.mode.plan_mode, cell.mode.text)
            gen = bench.generate(plan, cell.params, should_stop=self.should_stop)
        except CELL_ERRORS as exc:
            self._fail(cell, str(exc))
            return
        if gen.stop_reason == StopReason.INTERRUPTED:
            self.interrupted = True  # the partial cell is dropped; a resume runs it again
            return
        turn = cell_turn(bench, cell, gen)
        if commit_cell(self.conn, self.run_id, cell.key, turn, time.perf_counter() - started):
            self.ran += 1
            if self.on_cell is not None:
                self.on_cell(cell, turn)
        if self.progress is not None:
            self.progress.advance(condition_label(cell.condition()))

    def _fail(self, cell: Cell, message: str) -> None:
        fail_cell(self.conn, self.run_id, cell.key, message)
        self.errors += 1
        if self.on_error is not None:
            self.on_error(cell, message)
        if self.progress is not None:
            self.progress.advance(condition_label(cell.condition()) + " (error)")


def pending_cells(conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell]) -> list[Cell]:
    """The cells of `run_id` neither done nor stored as errors, in the experiment's order."""
    status = cell_status(conn, run_id)
    return [c for c in cells if status.get(c.key) == "pending"]


@contextmanager
def running(conn: sqlite3.Connection, run_id: int, progress: Progress | None) -> Iterator[None]:
    """Mark the run running; an exception (Ctrl-C included) marks it interrupted; the progress
    bar is closed either way. The caller sets the final status."""
    set_run_status(conn, run_id, "running")
    try:
        yield
    except BaseException:
        set_run_status(conn, run_id, "interrupted")
        raise
    finally:
        if progress is not None:
            progress.close()


def run_cells(exp: Experiment, conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell], *,
              should_stop: Callable[[], bool] = lambda: False, progress: Progress | None = None,
              on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
              on_error: Callable[[Cell, str], None] | None = None,
              open_backend: OpenBackend = default_open_backend,
              load_template: LoadTemplate = default_load_template) -> RunOutcome:
    """Run every pending cell of `run_id` in order; stop cleanly when `should_stop()` is true."""
    todo = pending_cells(conn, run_id, cells)
    already = len(cells) - len(todo)
    started = time.perf_counter()
    runner = _Runner(exp, conn, run_id, should_stop=should_stop, progress=progress, on_cell=on_cell,
                     on_error=on_error, open_backend=open_backend, load_template=load_template)
    with running(conn, run_id, progress):
        runner.run(todo)
    finished = not runner.interrupted and runner.ran + runner.errors == len(todo)
    set_run_status(conn, run_id, "done" if finished else "interrupted")
    return RunOutcome(run_id, len(cells), already, runner.ran, runner.errors, runner.interrupted,
                      time.perf_counter() - started)
