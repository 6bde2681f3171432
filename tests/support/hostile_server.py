"""An OpenAI-compatible server on loopback whose answers a test writes (stdlib http.server):
subclass :class:`Hostile`, give it a `completion`, and run it with :class:`Serve`."""

from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hostile(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose /v1/completions the test decides (`completion`)."""

    protocol_version = "HTTP/1.1"
    seen: list = []
    ended = threading.Event()  # set when a completion has run to its end (per server)

    def log_message(self, *args):  # quiet
        pass

    def _json(self, data, code=200):
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append((self.path, dict(self.headers)))
        if self.path == "/props":
            return self._json({"error": "no"}, 404)
        self.models()

    def models(self):
        self._json({"data": [{"id": "hostile"}]})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.seen.append((self.path, body))
        if self.path == "/tokenize":
            text = body.get("prompt", "")
            return self._json({"tokens": [ord(c) for c in text[:1]] + ([0] if len(text) > 1 else [])})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.completion()
        self.ended.set()

    def event(self, data) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.flush()

    def token(self, text: str, top=None) -> dict:
        return {"choices": [{"text": text, "logprobs": {"tokens": [text], "token_logprobs": [-0.1],
                                                         "top_logprobs": [top or {text: -0.1}]}}]}

    def completion(self):
        raise NotImplementedError


class Serve:
    def __init__(self, handler):
        handler.seen = []
        handler.ended = threading.Event()
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
