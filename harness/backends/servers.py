"""`--backend URL`: which kind of server a URL names, opening it, and spreading work over several.

URL forms:
  llama-server+http://host:port    llama.cpp's llama-server, native API
  openai+http://host:port          an OpenAI-compatible /v1/completions server (vLLM, llama-cpp-python)
  http://host:port                 detected: ``GET /props`` answering like llama-server means
                                   llama-server, otherwise ``GET /v1/models`` means OpenAI-compatible
(https works the same.) A trailing ``/v1`` is dropped. ``HARNESS_API_KEY``, when set, is sent as a
bearer token. Several URLs separated by commas form a :class:`ServerPool`.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from harness.backends.http import HttpClient
from harness.backends.llama_server import LlamaServerEngine
from harness.backends.openai_compat import OpenAICompatEngine
from harness.errors import CommandError, HarnessError, RemoteError
from harness.paths import user_templates_dir
from harness.remote import RemoteEngine
from harness.remote_workbench import RemoteWorkbench
from harness.workbench import choose_template

LLAMA_SERVER = "llama-server"
OPENAI = "openai"
KINDS = (LLAMA_SERVER, OPENAI)

T = TypeVar("T")
R = TypeVar("R")


def is_backend_url(spec: str | None) -> bool:
    return bool(spec) and "://" in str(spec)


def parse_backend(spec: str) -> tuple[str | None, str]:
    """`kind+scheme://host...` -> (kind or None to detect, base URL)."""
    scheme, sep, rest = spec.strip().partition("://")
    if not sep or not rest:
        raise CommandError(f"--backend '{spec}': expected a URL such as http://127.0.0.1:8080")
    kind, plus, transport = scheme.rpartition("+")
    if plus and kind not in KINDS:
        raise CommandError(f"--backend '{spec}': unknown server kind '{kind}'",
                           hint=f"use {' or '.join(k + '+http://...' for k in KINDS)}, or plain http://")
    if transport not in ("http", "https"):
        raise CommandError(f"--backend '{spec}': the scheme must be http or https")
    base = f"{transport}://{rest}".rstrip("/").removesuffix("/v1")
    return (kind or None), base


def detect_kind(client: HttpClient) -> str:
    """llama-server if /props answers with its fields, else OpenAI-compatible."""
    try:
        props = client.get("/props")
    except RemoteError as exc:
        if "cannot reach" in exc.message:
            raise
        return OPENAI
    if isinstance(props, dict) and ("default_generation_settings" in props or "chat_template" in props):
        return LLAMA_SERVER
    return OPENAI


def open_engine(spec: str, *, timeout: float = 120.0) -> RemoteEngine:
    kind, base = parse_backend(spec)
    client = HttpClient(base, timeout=timeout, api_key=os.environ.get("HARNESS_API_KEY") or None)
    kind = kind or detect_kind(client)
    if kind == LLAMA_SERVER:
        return LlamaServerEngine(base, client=client)
    return OpenAICompatEngine(base, client=client)


def open_remote_workbench(spec: str, template_spec: str | None,
                          variables: Mapping[str, Any] | None = None) -> RemoteWorkbench:
    """One server with a template (default: the server's own, which only llama-server exposes)."""
    if len(split_backends(spec)) > 1:
        raise CommandError("--backend: give one URL here (a list spreads cells only for `run`)")
    engine = open_engine(spec)
    try:
        template = choose_template(template_spec, engine.info.chat_template,
                                   f"the server at {engine.url}", user_templates_dir())
        return RemoteWorkbench(engine, template, variables)
    except BaseException:
        engine.close()
        raise


def split_backends(spec: str) -> list[str]:
    urls = [part.strip() for part in spec.split(",") if part.strip()]
    if not urls:
        raise CommandError("--backend: no URL given")
    return urls


class ServerPool:
    """Several servers; :meth:`map` runs one job per item, each server taking the next item as
    soon as it is free (one job at a time per server). For ``harness run --backend U1,U2``.

    `make(engine)` builds whatever a worker needs from its engine (e.g. a RemoteWorkbench);
    `job(worker, item)` does one cell. Results come back in the order of the items; the first
    HarnessError raised by a job is re-raised after every worker has stopped.
    """

    def __init__(self, engines: Sequence[RemoteEngine]):
        if not engines:
            raise CommandError("a server pool needs at least one server")
        self.engines = list(engines)

    @classmethod
    def open(cls, spec: str, *, timeout: float = 120.0) -> ServerPool:
        engines: list[RemoteEngine] = []
        try:
            for url in split_backends(spec):
                engines.append(open_engine(url, timeout=timeout))
        except BaseException:
            for engine in engines:
                engine.close()
            raise
        return cls(engines)

    def map(self, items: Iterable[T], job: Callable[[object, T], R],
            make: Callable[[RemoteEngine], object] = lambda e: e) -> list[R]:
        todo: queue.Queue[tuple[int, T]] = queue.Queue()
        for pair in enumerate(items):
            todo.put(pair)
        results: dict[int, R] = {}
        errors: list[BaseException] = []

        def worker(engine: RemoteEngine) -> None:
            try:
                made = make(engine)
                while not errors:
                    try:
                        index, item = todo.get_nowait()
                    except queue.Empty:
                        return
                    results[index] = job(made, item)
            except (HarnessError, OSError) as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(e,), daemon=True) for e in self.engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return [results[i] for i in sorted(results)]

    def close(self) -> None:
        for engine in self.engines:
            engine.close()
