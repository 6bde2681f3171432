"""`--backend URL`: which kind of server a URL names, and opening its engine.

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

from harness.backends.http import HttpClient
from harness.backends.llama_server import LlamaServerEngine
from harness.backends.openai_compat import OpenAICompatEngine
from harness.backends.remote import RemoteEngine
from harness.errors import CommandError, RemoteError

LLAMA_SERVER = "llama-server"
OPENAI = "openai"
KINDS = (LLAMA_SERVER, OPENAI)


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
        if exc.unreachable:
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


def split_backends(spec: str) -> list[str]:
    urls = [part.strip() for part in spec.split(",") if part.strip()]
    if not urls:
        raise CommandError("--backend: no URL given")
    return urls
