"""A loopback stand-in for vLLM's OpenAI-compatible server, for testing prompt scoring.

It is a stub, not vLLM: it speaks the documented formats of ``GET /v1/models`` (with
``max_model_len``), ``/tokenize`` / ``/detokenize`` and a non-streamed ``/v1/completions`` with
``prompt_logprobs`` (``choices[0].prompt_logprobs``: None for the first prompt token, then per
position ``{"<id>": {"logprob", "rank", "decoded_token"}}`` holding the top-k and the token that
came), answered from a local backend's logits. ``prompt_logprobs=False`` makes it a server that
ignores the parameter (as llama-cpp-python's does). ``logprobs_mode`` "raw" or "processed" answers
a completion's ``logprobs`` with the next token's top-k (``choices[0].logprobs``), of the model's own
distribution or — as vLLM's ``--logprobs-mode processed_logprobs`` — after the request's
temperature and top-k.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


class VllmStub:
    def __init__(self, backend, *, prompt_logprobs: bool = True, logprobs_mode: str | None = None):
        self.backend = backend
        self.prompt_logprobs = prompt_logprobs
        self.logprobs_mode = logprobs_mode
        self.requests: list[dict[str, Any]] = []

    def text(self, token: int) -> str:
        return self.backend.piece(token).decode("utf-8", "replace")

    def scored(self, ids: list[int], k: int) -> list[dict[str, Any] | None]:
        self.backend.truncate(0)
        rows = np.array(self.backend.decode(ids, all_logits=True), dtype=np.float64)
        self.backend.truncate(0)
        out: list[dict[str, Any] | None] = [None]
        for i in range(1, len(ids)):
            z = rows[i - 1] - rows[i - 1].max()
            logprobs = z - math.log(np.exp(z).sum())
            order = np.argsort(-logprobs, kind="stable")
            rank = {int(t): r + 1 for r, t in enumerate(order[:k])}
            entry = {str(int(t)): {"logprob": float(logprobs[t]), "rank": rank[int(t)],
                                   "decoded_token": self.text(int(t))} for t in order[:k]}
            token = ids[i]
            if str(token) not in entry:
                entry[str(token)] = {"logprob": float(logprobs[token]),
                                     "rank": 1 + int((logprobs > logprobs[token]).sum()),
                                     "decoded_token": self.text(token)}
            out.append(entry)
        return out

    def next_logprobs(self, body: dict[str, Any]) -> dict[str, Any]:
        """The first generated token's logprobs (greedy), raw or processed."""
        self.backend.truncate(0)
        z = np.array(self.backend.decode(self.backend.tokenize(body["prompt"]), all_logits=True)[-1],
                     dtype=np.float64)
        self.backend.truncate(0)
        if self.logprobs_mode == "processed":
            z = z / max(float(body.get("temperature", 1.0)), 1e-6)
            if int(body.get("top_k", -1)) > 0:
                z[np.argsort(-z)[int(body["top_k"]):]] = -np.inf
        logprobs = z - z.max() - math.log(np.exp(z - z.max()).sum())
        order = [int(t) for t in np.argsort(-logprobs, kind="stable")[:int(body["logprobs"])]]
        top = {self.text(t): float(logprobs[t]) for t in order if np.isfinite(logprobs[t])}
        return {"tokens": [self.text(order[0])], "token_logprobs": [float(logprobs[order[0]])],
                "top_logprobs": [top], "text_offset": [0]}

    def answer(self, path: str, body: dict[str, Any] | None) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [{"id": "stub/smollm2", "object": "model", "max_model_len": 1024,
                                                "owned_by": "vllm"}]}
        assert body is not None
        self.requests.append({"path": path, **body})
        if path == "/tokenize":
            return {"tokens": self.backend.tokenize(body["prompt"]), "count": 0, "max_model_len": 1024}
        if path == "/detokenize":
            return {"prompt": "".join(self.text(t) for t in body["tokens"])}
        if path == "/v1/completions":
            choice: dict[str, Any] = {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}
            if self.logprobs_mode and body.get("logprobs"):
                choice["logprobs"] = self.next_logprobs(body)
            if self.prompt_logprobs and body.get("prompt_logprobs"):
                choice["prompt_logprobs"] = self.scored([int(t) for t in body["prompt"]], int(body["prompt_logprobs"]))
            return {"id": "cmpl-stub", "object": "text_completion", "model": "stub/smollm2", "choices": [choice]}
        return None


def serve(stub: VllmStub) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, data: Any) -> None:
            body = json.dumps(data).encode() if data is not None else b'{"error": "not found"}'
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(stub.answer(self.path, None))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self._send(stub.answer(self.path, json.loads(self.rfile.read(length))))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
