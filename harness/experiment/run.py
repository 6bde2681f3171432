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

from harness.backends.base import Backend
from harness.experiment.cells import (
    CELL_ERRORS,
    BenchCache,
    CellLedger,
    RunOutcome,
    execute_batch,
    finish_run,
    pending_cells,
    prompt_batches,
    running,
)
from harness.experiment.progress import Progress
from harness.experiment.spec import Cell, Experiment, ModelSpec, conversation_table
from harness.prompt.templates import ChatTemplate

__all__ = ["CELL_ERRORS", "RunOutcome", "run_cells"]

OpenBackend = Callable[[ModelSpec, int | None], Backend]
LoadTemplate = Callable[[str, Backend], ChatTemplate]


def default_open_backend(model: ModelSpec, threads: int | None) -> Backend:
    from harness.models.registry import open_backend

    return open_backend(model.source, n_ctx=model.n_ctx, n_threads=threads, engine=model.engine)


def default_load_template(spec: str, backend: Backend) -> ChatTemplate:
    from harness.generation.workbench import choose_template
    from harness.paths import user_templates_dir

    return choose_template(spec, backend.info.chat_template, backend.info.name, user_templates_dir())


def run_cells(exp: Experiment, conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell], *,
              should_stop: Callable[[], bool] = lambda: False, progress: Progress | None = None,
              on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
              on_error: Callable[[Cell, str], None] | None = None,
              open_backend: OpenBackend = default_open_backend,
              load_template: LoadTemplate = default_load_template) -> RunOutcome:
    """Run every pending cell of `run_id` in order, each model loaded once; stop cleanly when
    `should_stop()` is true."""
    from harness.generation.workbench import Workbench

    def make_bench(backend: Backend, template: ChatTemplate) -> Workbench:
        bench = Workbench(backend, template)
        bench.literal_content = exp.literal_content
        return bench

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
                benches = BenchCache(backend, load_template, make_bench)
                for batch in prompt_batches(list(group), exp.batch):
                    if should_stop():
                        stopped = True
                        break
                    results = execute_batch(benches, conversations, batch, should_stop)
                    for result in results:
                        if result is not None:
                            ledger.record(result)
                    if None in results:
                        stopped = True
                        break
            finally:
                backend.close()
    return finish_run(conn, run_id, cells, todo, ledger, started, stopped=stopped)
