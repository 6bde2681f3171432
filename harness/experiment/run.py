"""Running an experiment's cells against the database: resumable, interruptible, one model load.

Cells come ordered model → template → conversation (harness.experiment.spec.expand); each model is
opened once and its workbench keeps one prompt evaluator across templates and cells, so cells
sharing a prompt prefix reuse the KV cache. Cells sharing a whole prompt (seeds, EOS policies,
sampling sets of one template × conversation × mode) are decoded together, up to the experiment's
``batch`` at a time; each is still committed on its own. A cell is committed in one transaction when it
finishes; a cell cut short by `should_stop` (Ctrl-C) is dropped and runs again on resume.
A cell that cannot run (the template refuses the mode, the prompt does not fit) is stored as an
error and not retried by a resume.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any

from harness.backends.base import MultiSequenceBackend
from harness.experiment.cells import (
    CELL_ERRORS,
    BenchCache,
    CellLedger,
    RunOutcome,
    execute_cells,
    finish_run,
    pending_cells,
    prompt_batches,
    running,
)
from harness.experiment.db import record_decode_path
from harness.experiment.progress import Progress
from harness.experiment.spec import Cell, Experiment, ModelSpec, conversation_table
from harness.generation.workbench import BaseWorkbench

__all__ = ["CELL_ERRORS", "RunOutcome", "run_cells"]

OpenBackend = Callable[[ModelSpec, int | None], MultiSequenceBackend]


def default_open_backend(model: ModelSpec, threads: int | None) -> MultiSequenceBackend:
    from harness.models.registry import open_backend

    return open_backend(model.source, n_ctx=model.n_ctx, n_threads=threads, engine=model.engine)


def decode_settings(exp: Experiment) -> dict[str, Any]:
    """Model label -> the decode path its engine options give with this llama.cpp build (part of
    the run's digest: a run on another path, or another build, is another run)."""
    from harness.backends.llama_cpp import decode_path

    return {m.label: decode_path(m.engine, n_batch=m.engine.n_batch or 512).settings() for m in exp.models}


def run_cells(exp: Experiment, conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell], *,
              should_stop: Callable[[], bool] = lambda: False, progress: Progress | None = None,
              on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
              on_error: Callable[[Cell, str], None] | None = None,
              open_backend: OpenBackend = default_open_backend,
              on_notice: Callable[[str], None] | None = None) -> RunOutcome:
    """Run every pending cell of `run_id` in order, each model loaded once; stop cleanly when
    `should_stop()` is true. Each model's decode path (and its invariance verdict) is recorded
    with the run as it loads; `on_notice` hears of a path that is not invariant."""
    from harness.generation.open import local_workbench

    def make_bench(backend: MultiSequenceBackend, template: str) -> BaseWorkbench:
        return local_workbench(backend, template, literal_content=exp.literal_content)

    todo = pending_cells(conn, run_id, cells)
    started = time.perf_counter()
    ledger = CellLedger(conn, run_id, progress=progress, on_cell=on_cell, on_error=on_error)
    conversations = conversation_table(exp)
    models = {m.label: m for m in exp.models}
    stopped = False
    with running(conn, run_id, progress):
        for label, group in groupby(todo, key=lambda c: c.model):
            if stopped or should_stop():
                stopped = True
                break
            backend = open_backend(models[label], exp.threads)
            try:
                record_decode_path(conn, run_id, label, backend.decode_path.to_dict())
                notice = backend.decode_path.notice()
                if notice and on_notice is not None:
                    on_notice(f"{label}: {notice}")
                benches = BenchCache(backend, make_bench)
                for batch in prompt_batches(list(group), exp.batch):
                    if should_stop():
                        stopped = True
                        break
                    results = execute_cells(benches, conversations, batch, should_stop)
                    for result in results:
                        if result is not None:
                            ledger.record(result)
                    if None in results:
                        stopped = True
                        break
            finally:
                backend.close()
    return finish_run(conn, run_id, cells, todo, ledger, started, stopped=stopped)
