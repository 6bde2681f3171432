"""Running an experiment's cells on servers: `harness run EXP.yaml --backend URL1,URL2,...`.

A server serves one model, so the experiment must name exactly one; its label is stored in
``cells.model`` as for a local run (the digest, the keys and a resume are the same) and the URL
of the server that ran a cell in ``cells.backend``. Templates render here; ``gguf`` means the
server's own template (llama-server's ``/props``).

Each server gets `parallel` worker threads (``--parallel K``; 1 by default), each with its own engine
and RemoteWorkbench, each running one cell at a time, so a llama-server with K slots decodes K cells
together; workers take cells from a :class:`~harness.experiment.cell_queue.CellQueue` (groups sharing
a prompt prefix stay on one worker). Each cell is its own request, so its statistics are what a
serial run gives. Workers never touch the database: they send each finished cell to
the calling thread, which commits it in one transaction, so the sqlite3 connection stays in one
thread. As for a local run, finished cells are skipped, a cell cut short by `should_stop` is
dropped (it runs again on resume) and a cell that cannot run is stored as an error. A server
that fails (refused, timed out, an HTTP error) is dropped: the cell it was running stays pending
for a resume, its other cells go to the servers left, and the outcome names it. After a stop,
a server that does not answer within STOP_GRACE_SECONDS is left behind (its cell stays pending).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends.remote import RemoteEngine
from harness.backends.servers import open_engine as open_server
from harness.errors import CommandError, RemoteError
from harness.experiment.cell_queue import CellQueue
from harness.experiment.cells import (
    BenchCache,
    CellLedger,
    CellResult,
    RunOutcome,
    execute_cells,
    finish_run,
    pending_cells,
    running,
)
from harness.experiment.progress import Progress
from harness.experiment.spec import Cell, Experiment, ModelSpec, conversation_table
from harness.generation.open import server_workbench

OpenEngine = Callable[[str], RemoteEngine]
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 15.0  # after Ctrl-C, how long to wait for a server that does not answer


def pool_model(exp: Experiment) -> ModelSpec:
    """The experiment's one model (its label names the servers' model), or why it cannot run
    on servers."""
    if len(exp.models) != 1:
        labels = ", ".join(m.label for m in exp.models)
        raise CommandError(f"--backend runs one model (a server serves one), the experiment lists "
                           f"{len(exp.models)}: {labels}", where=exp.path,
                           hint="keep one entry in `models:` (its label names the server's model)")
    if exp.literal_content:
        raise CommandError("literal_content needs a local model: a server tokenizes the whole prompt",
                           where=exp.path, hint="remove literal_content, or run without --backend")
    return exp.models[0]


@dataclass(frozen=True)
class _Notice:
    url: str
    message: str


@dataclass(frozen=True)
class _Exit:
    url: str
    worker: str  # its name in the queue
    interrupted: bool = False
    lost: str = ""  # why the server was dropped
    crash: BaseException | None = None  # a bug: re-raised by the calling thread


class _Worker:
    """One server's thread: opens its engine, then runs the cells the queue hands it."""

    def __init__(self, url: str, exp: Experiment, tasks: CellQueue[Cell], results: queue.Queue,
                 should_stop: Callable[[], bool], open_engine: OpenEngine, name: str = ""):
        self.url, self.tasks, self.results, self.should_stop = url, tasks, results, should_stop
        self.name = name or url  # in the queue: one of the server's workers
        self.open_engine = open_engine
        self.conversations = conversation_table(exp)

    def __call__(self) -> None:
        engine, end = None, _Exit(self.url, self.name)
        try:
            engine = self.open_engine(self.url)
            if self.name == self.url or self.name.endswith("#0"):
                self.results.put(_Notice(self.url, f"serving {engine.info.name}"))
            end = self._loop(engine)
        except (RemoteError, OSError) as exc:
            end = _Exit(self.url, self.name, lost=str(exc))
        except BaseException as exc:  # handed to the calling thread, which re-raises it
            end = _Exit(self.url, self.name, crash=exc)
        finally:
            if engine is not None:
                engine.close()
            self.results.put(end)

    def _loop(self, engine: RemoteEngine) -> _Exit:
        benches = BenchCache(engine, server_workbench)
        while not self.should_stop():
            cell = self.tasks.take(self.name)
            if cell is None:
                return _Exit(self.url, self.name)
            finished = execute_cells(benches, self.conversations, [cell], self.should_stop, backend=self.url)[0]
            if finished is None:
                break
            self.results.put(finished)
        return _Exit(self.url, self.name, interrupted=True)


class _Collector:
    """The calling thread's side: starts the workers, commits what they send, counts."""

    def __init__(self, exp: Experiment, conn: sqlite3.Connection, run_id: int, urls: Sequence[str], *,
                 should_stop: Callable[[], bool], progress: Progress | None,
                 on_cell: Callable[[Cell, dict[str, Any]], None] | None,
                 on_error: Callable[[Cell, str], None] | None,
                 on_notice: Callable[[str, str], None] | None,
                 open_engine: OpenEngine, parallel: int = 1):
        self.exp, self.urls, self.parallel = exp, list(urls), parallel
        self.should_stop, self.on_notice = should_stop, on_notice
        self.open_engine = open_engine
        self.ledger = CellLedger(conn, run_id, progress=progress, on_cell=on_cell, on_error=on_error)
        self.interrupted = False
        self.failed: dict[str, str] = {}

    def run(self, todo: Sequence[Cell]) -> None:
        tasks: CellQueue[Cell] = CellQueue(todo)
        results: queue.Queue = queue.Queue()
        abort = threading.Event()

        def stop() -> bool:
            return abort.is_set() or self.should_stop()

        names = [(url, url if self.parallel == 1 else f"{url}#{i}") for url in self.urls
                 for i in range(self.parallel)]
        threads = [threading.Thread(target=_Worker(url, self.exp, tasks, results, stop, self.open_engine, name),
                                    name=f"harness {name}", daemon=True)
                   for url, name in names]
        for thread in threads:
            thread.start()
        crash: BaseException | None = None
        running = len(threads)
        give_up: float | None = None
        try:
            while running:
                if give_up is None and stop():
                    give_up = time.monotonic() + STOP_GRACE_SECONDS
                if give_up is not None and time.monotonic() > give_up:
                    self.interrupted = True  # a worker stuck in a request is left behind: its
                    break                    # daemon thread's cell stays pending
                try:
                    message = results.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    continue
                if isinstance(message, _Exit):
                    running -= 1
                    crash = crash or message.crash
                    if message.crash is not None:
                        abort.set()
                    self._exit(message, tasks)
                else:
                    self._receive(message)
        except BaseException:
            abort.set()  # the workers stop at their next token; their cells stay pending
            raise
        if crash is not None:
            raise crash

    def _receive(self, message: CellResult | _Notice) -> None:
        if isinstance(message, _Notice):
            if self.on_notice is not None:
                self.on_notice(message.url, message.message)
            return
        self.ledger.record(message)

    def _exit(self, message: _Exit, tasks: CellQueue[Cell]) -> None:
        self.interrupted = self.interrupted or message.interrupted
        if message.lost:
            tasks.release(message.worker)
            self.failed[message.url] = message.lost
            if self.on_notice is not None:
                self.on_notice(message.url, f"dropped: {message.lost}")


def run_cells_remote(exp: Experiment, conn: sqlite3.Connection, run_id: int, cells: Sequence[Cell],
                     urls: Sequence[str], *, should_stop: Callable[[], bool] = lambda: False,
                     progress: Progress | None = None,
                     on_cell: Callable[[Cell, dict[str, Any]], None] | None = None,
                     on_error: Callable[[Cell, str], None] | None = None,
                     on_notice: Callable[[str, str], None] | None = None,
                     open_engine: OpenEngine = open_server, parallel: int = 1) -> RunOutcome:
    """Run every pending cell of `run_id` on the servers at `urls`, `parallel` cells at a time
    each; stop cleanly when `should_stop()` is true. `on_notice(url, text)`: a server's model name
    when it opens, why it was dropped when it fails."""
    pool_model(exp)
    if not urls:
        raise CommandError("--backend: no URL given")
    if parallel < 1:
        raise CommandError("--parallel must be at least 1", hint="the cells run at once on each server")
    todo = pending_cells(conn, run_id, cells)
    started = time.perf_counter()
    collector = _Collector(exp, conn, run_id, urls, should_stop=should_stop, progress=progress,
                           on_cell=on_cell, on_error=on_error, on_notice=on_notice,
                           open_engine=open_engine, parallel=parallel)
    with running(conn, run_id, progress):
        if todo:
            collector.run(todo)
    return finish_run(conn, run_id, cells, todo, collector.ledger, started, stopped=collector.interrupted,
                      failed_servers=collector.failed)
