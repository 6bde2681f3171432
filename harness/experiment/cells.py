"""What running one cell means, the same for a model in this process and for servers.

:class:`BenchCache` keeps one workbench per engine and switches its template as cells ask (a
template that cannot be used is remembered, so its other cells fail at once); :func:`execute_cell`
plans and generates one cell into a :class:`CellResult`; :class:`CellLedger` writes results to
the database (one transaction per cell), counts them and advances the progress line;
:func:`finish_run` sets the run's status and makes the outcome. The local runner
(:mod:`harness.experiment.run`) and the server pool (:mod:`harness.experiment.pool`) differ only in
how engines are opened and on which thread a cell runs.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Generic, TypeVar

from harness.errors import (
    CommandError,
    ContextOverflowError,
    MessagesError,
    ModeError,
    TemplateError,
)
from harness.experiment.choice import choice_turn
from harness.experiment.db import cell_status, commit_cell, fail_cell, set_run_status
from harness.experiment.fixed_text import score_turn
from harness.experiment.progress import Progress
from harness.experiment.spec import CHOICE, SCORE, Cell, condition_label
from harness.generation.records import tokens_json
from harness.generation.turn import StopReason
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import Conversation
from harness.prompt.templates import ChatTemplate

READ_ONLY_KINDS = (SCORE, CHOICE)  # cells that sample nothing
CELL_ERRORS = (TemplateError, ModeError, ContextOverflowError, CommandError, MessagesError)

E = TypeVar("E")  # an engine: a local Backend or a RemoteEngine


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


class BenchCache(Generic[E]):
    """One workbench on `engine`, its template switched as cells need."""

    def __init__(self, engine: E, load_template: Callable[[str, E], ChatTemplate],
                 make_bench: Callable[[E, ChatTemplate], BaseWorkbench]):
        self.engine, self.load_template, self.make_bench = engine, load_template, make_bench
        self.bench: BaseWorkbench | None = None
        self.current: str | None = None
        self.refused: dict[str, str] = {}  # template spec -> why it cannot be used

    def bench_for(self, spec: str) -> BaseWorkbench:
        """The workbench with template `spec`; raises a CELL_ERRORS error if it cannot be had."""
        if spec in self.refused:
            raise TemplateError(self.refused[spec])
        if spec != self.current or self.bench is None:
            try:
                template = self.load_template(spec, self.engine)
                if self.bench is None:
                    self.bench = self.make_bench(self.engine, template)
                else:
                    self.bench.set_template(template)
            except CELL_ERRORS as exc:
                self.refused[spec] = str(exc)
                raise
            self.current = spec
        return self.bench


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    turn: dict[str, Any] | None  # None: the cell could not run (`error` says why)
    seconds: float = 0.0
    error: str = ""
    backend: str | None = None  # the server that ran it


def cell_turn(bench: BaseWorkbench, cell: Cell, gen) -> dict[str, Any]:
    """What the database stores of one generation (token dicts exactly as the JSON gives them)."""
    return {"mode": cell.mode.label, "writer": gen.writer, "prompt": gen.prompt, "text": gen.text,
            "stop_reason": gen.stop_reason, "prompt_tokens": tokens_json(gen.prompt_tokens, bench.piece_text),
            "tokens": tokens_json(gen.tokens, bench.piece_text), "prompt_seconds": gen.prompt_seconds,
            "seconds": gen.seconds}


def execute_cell(benches: BenchCache, conversations: Mapping[tuple[str, str], Conversation], cell: Cell,
                 should_stop: Callable[[], bool], backend: str | None = None) -> CellResult | None:
    """Run one cell: its turn, or its error; None when it was cut short (dropped: a resume runs
    it again)."""
    started = time.perf_counter()
    if cell.mode.kind in READ_ONLY_KINDS:
        return _read_only_cell(benches, conversations, cell, backend)
    try:
        bench = benches.bench_for(cell.template)
        plan = bench.plan(conversations[cell.conversation_key], cell.mode.plan_mode, cell.mode.text)
        gen = bench.generate(plan, cell.params, should_stop=should_stop)
    except CELL_ERRORS as exc:
        return CellResult(cell, None, 0.0, str(exc), backend)
    if gen.stop_reason == StopReason.INTERRUPTED:
        return None
    return CellResult(cell, cell_turn(bench, cell, gen), time.perf_counter() - started, backend=backend)


def _read_only_cell(benches: BenchCache, conversations: Mapping[tuple[str, str], Conversation], cell: Cell,
                    backend: str | None) -> CellResult:
    """A cell that samples nothing: a fixed text teacher-forced (harness.experiment.fixed_text)
    or a multiple-choice item read from the option letters (harness.experiment.choice)."""
    started = time.perf_counter()
    try:
        bench = benches.bench_for(cell.template)
        conversation = conversations[cell.conversation_key]
        if cell.mode.kind == CHOICE:
            turn = choice_turn(bench, conversation, mode_label=cell.mode.label)
        else:
            turn = score_turn(bench, conversation, mode_label=cell.mode.label, option=cell.mode.text)
    except CELL_ERRORS as exc:
        return CellResult(cell, None, 0.0, str(exc), backend)
    return CellResult(cell, turn, time.perf_counter() - started, backend=backend)


def prompt_batches(cells: Sequence[Cell], size: int) -> Iterator[list[Cell]]:
    """Consecutive cells that share a prompt (model, template, conversation, mode; EOS policy,
    sampling set and seed may differ), at most `size` at a time, in the cells' order."""
    for _, group in groupby(cells, key=lambda c: (c.model, c.template, c.conversation, c.mode)):
        same = list(group)
        for start in range(0, len(same), max(1, size)):
            yield same[start:start + size]


def execute_batch(benches: BenchCache, conversations: Mapping[tuple[str, str], Conversation], cells: Sequence[Cell],
                  should_stop: Callable[[], bool], backend: str | None = None) -> list[CellResult | None]:
    """Run cells sharing one prompt decoded together: one result per cell, None for a cell cut
    short (dropped: a resume runs it again). A cell error (a template refusing the mode, a bad
    bias) sends the cells through :func:`execute_cell` one by one, so each gets its own error.
    Each cell's `seconds` is its share of the batch's wall time."""
    if len(cells) == 1 or cells[0].mode.kind in READ_ONLY_KINDS:
        return [execute_cell(benches, conversations, cell, should_stop, backend) for cell in cells]
    started = time.perf_counter()
    first = cells[0]
    try:
        bench = benches.bench_for(first.template)
        plan = bench.plan(conversations[first.conversation_key], first.mode.plan_mode, first.mode.text)
        gens = bench.generate_many(plan, [c.params for c in cells], should_stop=should_stop)
    except CELL_ERRORS:
        out: list[CellResult | None] = []
        for cell in cells:
            result = execute_cell(benches, conversations, cell, should_stop, backend)
            out.append(result)
            if result is None:
                break
        return out
    share = (time.perf_counter() - started) / len(cells)
    return [None if gen.stop_reason == StopReason.INTERRUPTED
            else CellResult(cell, cell_turn(bench, cell, gen), share, backend=backend)
            for cell, gen in zip(cells, gens, strict=False)] + [None] * (len(cells) - len(gens))


class CellLedger:
    """The calling thread's record of a run: commits each result in one transaction, counts,
    reports to the callbacks and the progress line."""

    def __init__(self, conn: sqlite3.Connection, run_id: int, *, progress: Progress | None = None,
                 on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
                 on_error: Callable[[Cell, str], None] | None = None):
        self.conn, self.run_id, self.progress = conn, run_id, progress
        self.on_cell, self.on_error = on_cell, on_error
        self.ran = self.errors = 0
        self.per_backend: Counter[str] = Counter()

    def record(self, result: CellResult) -> None:
        cell, note = result.cell, condition_label(result.cell.condition())
        extra = {"backend": result.backend} if result.backend else {}
        if result.turn is None:
            fail_cell(self.conn, self.run_id, cell.key, result.error, **extra)
            self.errors += 1
            note += " (error)"
            if self.on_error is not None:
                self.on_error(cell, result.error)
        elif commit_cell(self.conn, self.run_id, cell.key, result.turn, result.seconds, **extra):
            self.ran += 1
            if self.on_cell is not None:
                self.on_cell(cell, result.turn)
        if result.backend:
            self.per_backend[result.backend] += 1
        if self.progress is not None:
            self.progress.advance(note)


def pending_cells(conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell]) -> list[Cell]:
    """The cells of `run_id` neither done nor stored as errors, in the experiment's order."""
    status = cell_status(conn, run_id)
    return [c for c in cells if status.get(c.key) == "pending"]


@contextmanager
def running(conn: sqlite3.Connection, run_id: int, progress: Progress | None) -> Iterator[None]:
    """Mark the run running; an exception (Ctrl-C included) marks it interrupted; the progress
    bar is closed either way. The caller sets the final status (:func:`finish_run`)."""
    set_run_status(conn, run_id, "running")
    try:
        yield
    except BaseException:
        set_run_status(conn, run_id, "interrupted")
        raise
    finally:
        if progress is not None:
            progress.close()


def finish_run(conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell], todo: Sequence[Cell],
               ledger: CellLedger, started: float, *, stopped: bool,
               failed_servers: Mapping[str, str] | None = None) -> RunOutcome:
    """The run's final status and outcome: done when every pending cell finished; interrupted
    when a stop left cells pending."""
    finished = ledger.ran + ledger.errors == len(todo)
    set_run_status(conn, run_id, "done" if finished else "interrupted")
    return RunOutcome(run_id, len(cells), len(cells) - len(todo), ledger.ran, ledger.errors,
                      stopped and not finished, time.perf_counter() - started,
                      dict(ledger.per_backend), dict(failed_servers or {}))
