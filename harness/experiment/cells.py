"""What running one cell means, the same for a model in this process and for servers.

:class:`BenchCache` keeps one workbench per engine and switches its template as cells ask (a
template that cannot be used is remembered, so its other cells fail at once); :func:`execute_cells`
runs cells sharing a prompt as one turn (harness.generation.request) into :class:`CellResult` s; :class:`CellLedger` writes results to
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
from harness.experiment.spec import CHOICE, Cell, condition_label
from harness.generation.open import template_for
from harness.generation.records import Generation, tokens_json
from harness.generation.request import TurnRequest, run_turn
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import Conversation

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
    """One workbench on `engine`, its template switched as cells need. `make_bench(engine, spec)`
    is one of :mod:`harness.generation.open`'s builders."""

    def __init__(self, engine: E, make_bench: Callable[[E, str], BaseWorkbench]):
        self.engine, self.make_bench = engine, make_bench
        self.bench: BaseWorkbench | None = None
        self.current: str | None = None
        self.refused: dict[str, str] = {}  # template spec -> why it cannot be used

    def bench_for(self, spec: str) -> BaseWorkbench:
        """The workbench with template `spec`; raises a CELL_ERRORS error if it cannot be had."""
        if spec in self.refused:
            raise TemplateError(self.refused[spec])
        if spec != self.current or self.bench is None:
            try:
                if self.bench is None:
                    self.bench = self.make_bench(self.engine, spec)
                else:
                    self.bench.set_template(template_for(spec, self.bench))
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


def cell_turn(bench: BaseWorkbench, cell: Cell, gen: Generation) -> dict[str, Any]:
    """What the database stores of one generation (token dicts exactly as the JSON gives them)."""
    return {"mode": cell.mode.label, "writer": gen.writer, "prompt": gen.prompt, "text": gen.text,
            "stop_reason": gen.stop_reason, "prompt_tokens": tokens_json(gen.prompt_tokens, bench.piece_text),
            "tokens": tokens_json(gen.tokens, bench.piece_text), "prompt_seconds": gen.prompt_seconds,
            "seconds": gen.seconds}


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


def execute_cells(benches: BenchCache, conversations: Mapping[tuple[str, str], Conversation], cells: Sequence[Cell],
                  should_stop: Callable[[], bool], backend: str | None = None) -> list[CellResult | None]:
    """Run cells sharing one prompt (one cell, or a batch from :func:`prompt_batches`) as one
    turn with a candidate per cell, decoded together: one result per cell, None for a cell cut
    short (dropped: a resume runs it again). A cell error (a template refusing the mode, a bad
    bias) runs a batch's cells one by one, so each gets its own error. Each cell's `seconds` is
    its share of the turn's wall time. Cells that sample nothing run one by one."""
    if not cells[0].mode.samples:
        return [_read_only_cell(benches, conversations, cell, backend) for cell in cells]
    started = time.perf_counter()
    first = cells[0]
    try:
        bench = benches.bench_for(first.template)
        request = TurnRequest(conversations[first.conversation_key], first.mode.plan_mode, first.mode.text)
        results = run_turn(bench, request, candidates=[c.params for c in cells], should_stop=should_stop)
    except CELL_ERRORS as exc:
        if len(cells) == 1:
            return [CellResult(cells[0], None, 0.0, str(exc), backend)]
        out: list[CellResult | None] = []
        for cell in cells:
            out += execute_cells(benches, conversations, [cell], should_stop, backend)
            if out[-1] is None:
                break
        return out
    share = (time.perf_counter() - started) / len(cells)
    return [None if result.interrupted else CellResult(cell, cell_turn(bench, cell, result.generation), share,
                                                       backend=backend)
            for cell, result in zip(cells, results, strict=False)] + [None] * (len(cells) - len(results))


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
