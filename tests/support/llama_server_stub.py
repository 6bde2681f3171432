"""A loopback stand-in for llama.cpp's llama-server, for testing the native backend.

It is a stub, not llama-server: it speaks the documented request and response formats of
``/props``, ``/tokenize``, ``/detokenize`` and streamed ``/completion`` with ``n_probs``
(``completion_probabilities`` entries with ``id``, ``token``, ``bytes``, ``logprob`` and
``top_logprobs``; a final chunk with ``stop: true`` and ``stop_type``), and answers them from
harness's own FakeBackend, greedily. So a test can check the client against the documented
format and compare its output with the local token loop on the same fake model.
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from harness.backends.fake import FakeBackend


class StubModel:
    def __init__(self, script: str, *, eos_probs_in_final: bool, eos_streamed: bool = False,
                 specials: tuple[str, ...] | None = None, slots: int = 1, token_seconds: float = 0.0,
                 reports_vocab: bool = True):
        self.fake = FakeBackend(script, **({"specials": specials} if specials else {}))
        self.reports_vocab = reports_vocab  # /v1/models with meta.n_vocab (older servers: none)
        self.slots = slots  # /props total_slots
        self.token_seconds = token_seconds  # a pause per streamed token, to see requests overlap
        self.lock, self.compute = threading.Lock(), threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.eos_probs_in_final = eos_probs_in_final
        self.eos_streamed = eos_streamed  # as the llama-server build of llama-cpp-python 0.3.36 does
        self.requests: list[dict[str, Any]] = []

    def entry(self, token: int, logprobs: np.ndarray, n_probs: int) -> dict[str, Any]:
        def one(i: int) -> dict[str, Any]:
            raw = self.fake.piece(int(i))
            return {"id": int(i), "token": raw.decode("utf-8", "replace"), "bytes": list(raw),
                    "logprob": float(logprobs[i])}

        order = np.argsort(-logprobs, kind="stable")[:n_probs]
        return one(token) | {"top_logprobs": [one(int(i)) for i in order]}

    def apply_template(self, body: dict[str, Any]) -> str:
        """As llama-server renders: its template, plain jinja2 here (minja there), with the
        generation prompt, then whatever `apply_template_edit` does to it (a disagreeing engine)."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.requests.append(body)
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = env.from_string(self.fake.info.chat_template).render(
            messages=body["messages"], tools=body.get("tools"), add_generation_prompt=True,
            bos_token="<s>", eos_token="</s>", **body.get("chat_template_kwargs", {}))
        return self.apply_template_edit(text)

    apply_template_edit = staticmethod(lambda text: text)

    def prompt_ids(self, prompt: Any) -> list[int]:
        parts = prompt if isinstance(prompt, list) else [prompt]
        ids: list[int] = []
        for part in parts:
            ids += self.fake.tokenize(part) if isinstance(part, str) else [int(part)]
        return ids

    def completion(self, body: dict[str, Any]):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield from self._completion(body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _completion(self, body: dict[str, Any]):
        self.requests.append(body)
        context = self.prompt_ids(body["prompt"])
        banned = {int(i) for i, v in body.get("logit_bias", []) if v is False}
        n_probs = int(body.get("n_probs", 0))
        eog = self.fake.info.eog_ids
        for _ in range(int(body.get("n_predict", 16))):
            with self.compute:  # one model, several requests at once
                self.fake.truncate(0)
                logits = self.fake.decode(context, all_logits=True)[-1].astype(np.float64)
            logprobs = logits - (logits.max() + math.log(np.exp(logits - logits.max()).sum()))
            allowed = logits.copy()
            allowed[list(banned)] = -np.inf
            token = int(np.argmax(allowed))
            entry = self.entry(token, logprobs, n_probs)
            if token in eog and not body.get("ignore_eos") and self.eos_streamed:
                # the EOS as a token of its own, spelled "" (a control token), then an empty stop
                entry |= {"token": "", "bytes": []}
                yield {"content": "", "tokens": [token], "stop": False, "completion_probabilities": [entry]}
                yield {"content": "", "tokens": [], "stop": True, "stop_type": "eos"}
                return
            if token in eog and not body.get("ignore_eos"):
                probs = [entry] if self.eos_probs_in_final else []
                yield {"content": "", "tokens": [], "stop": True, "stop_type": "eos",
                       "completion_probabilities": probs}
                return
            context.append(token)
            time.sleep(self.token_seconds)
            yield {"content": entry["token"], "tokens": [token], "stop": False,
                   "completion_probabilities": [entry]}
        yield {"content": "", "tokens": [], "stop": True, "stop_type": "limit"}


def _handler(model: StubModel):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _json(self, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/props":
                fake = model.fake
                self._json({"default_generation_settings": {"n_ctx": fake.info.n_ctx},
                            "model_path": "/models/fake.gguf", "chat_template": fake.info.chat_template,
                            "bos_token": "<s>", "eos_token": "</s>", "build_info": "stub",
                            "total_slots": model.slots})
            elif self.path == "/v1/models" and model.reports_vocab:
                self._json({"object": "list", "data": [{"id": "fake.gguf", "object": "model",
                                                        "meta": {"n_vocab": model.fake.info.n_vocab}}]})
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                ids = model.fake.tokenize(body["content"], special=body.get("parse_special", True))
                pieces = [{"id": i, "piece": model.fake.piece(i).decode("utf-8", "replace")} for i in ids]
                self._json({"tokens": pieces if body.get("with_pieces") else ids})
            elif self.path == "/detokenize":
                text = b"".join(model.fake.piece(i) for i in body["tokens"]).decode("utf-8", "replace")
                self._json({"content": text})
            elif self.path == "/apply-template":
                self._json({"prompt": model.apply_template(body)})
            elif self.path == "/completion":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in model.completion(body):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
            else:
                self.send_error(404)

    return Handler


class StubServer:
    def __init__(self, script: str, *, eos_probs_in_final: bool = True, eos_streamed: bool = False,
                 specials: tuple[str, ...] | None = None, slots: int = 1, token_seconds: float = 0.0,
                 reports_vocab: bool = True):
        self.model = StubModel(script, eos_probs_in_final=eos_probs_in_final, eos_streamed=eos_streamed,
                               specials=specials, slots=slots, token_seconds=token_seconds,
                               reports_vocab=reports_vocab)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.model))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
