"""JSON over HTTP for the remote engines (stdlib only): requests, server-sent events, errors.

Every failure becomes one :class:`RemoteError` naming the URL and what to do: connection
refused or timed out, an HTTP error status (with the server's own message when it sends one),
a body that is not JSON.

A server is data, not a trusted peer, so every exchange is bounded: a body is at most
``MAX_BODY`` bytes and an event line ``MAX_LINE``; a request has an idle timeout (no data for
``timeout`` seconds) *and* an overall ``deadline``; a stream is read by a helper thread so that
Ctrl-C (`should_stop`) ends a stalled stream within ``POLL`` seconds; and the API key goes only
to the origin it was given for (a redirect elsewhere drops it).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from harness.errors import RemoteError

CONNECT_HINT = "check that the server is running and the URL is right"
MAX_BODY = 32 * 2**20  # one JSON answer (token lists, /v1/models)
MAX_LINE = 8 * 2**20  # one server-sent event line
DEADLINE = 1800.0  # seconds, one request from connect to the last byte
POLL = 0.25  # seconds between checks of Ctrl-C and the clocks while a stream is silent


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but the bearer token never leaves the origin it was given for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for key in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[key]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


_OPENER = urllib.request.build_opener(_SameOriginAuth)


class HttpClient:
    """One server's base URL, an idle timeout, a deadline, and an optional bearer token."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, api_key: str | None = None,
                 deadline: float = DEADLINE, max_body: int = MAX_BODY, max_line: int = MAX_LINE):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        self.deadline = deadline
        self.max_body = max_body
        self.max_line = max_line

    def _request(self, path: str, body: Any | None) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                      method="GET" if data is None else "POST")

    def _open(self, path: str, body: Any | None):
        url = self.base_url + path
        try:
            return _OPENER.open(self._request(path, body), timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"HTTP {exc.code} from the server: {_server_message(exc)}", where=url,
                              hint=_status_hint(exc.code), status=exc.code) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, timeouts
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the server: {reason}", where=url, hint=CONNECT_HINT,
                              unreachable=True) from None

    def get(self, path: str) -> Any:
        return self._read_json(path, None)

    def post(self, path: str, body: Any) -> Any:
        return self._read_json(path, body)

    def _read_json(self, path: str, body: Any | None) -> Any:
        url = self.base_url + path
        ends = time.monotonic() + self.deadline
        with self._open(path, body) as response:
            raw = _read_bounded(response, url, self.max_body, ends)
        return parse_json(raw, url)

    def stream(self, path: str, body: Any, should_stop: Callable[[], bool] | None = None) -> Iterator[Any]:
        """POST and yield the JSON of each server-sent event's `data:` line until `[DONE]` or
        the end of the stream; ends early (quietly) once `should_stop()` is true. Closing the
        generator closes the connection."""
        url = self.base_url + path
        ends = time.monotonic() + self.deadline
        response = self._open(path, body)
        lines = _LineReader(response, self.max_line)
        try:
            idle_since = time.monotonic()
            while True:
                line = lines.next(should_stop)
                now = time.monotonic()
                if line is _STOPPED:
                    return
                if line is not None and not line:
                    return
                if line:
                    if len(line) > self.max_line:
                        raise RemoteError(f"an event line is longer than {self.max_line // 2**20} MB",
                                          where=url, hint="is this an inference server of the kind named?")
                    text = line.decode("utf-8", "replace").strip()
                    if text.startswith("data:"):  # else blank separators, comments (": ping"), names
                        idle_since = now
                        payload = text[5:].strip()
                        if payload == "[DONE]":
                            return
                        yield parse_json(payload.encode("utf-8"), url)
                if now - idle_since > self.timeout:  # comments and pings are not data
                    raise RemoteError(f"the server sent no data for {self.timeout:g} s", where=url,
                                      hint="the server may be stalled; try again or raise the timeout")
                if now > ends:
                    raise RemoteError(f"the request took longer than {self.deadline:g} s", where=url,
                                      hint="lower --max-tokens, or check the server")
        finally:
            lines.close()


_STOPPED = object()


class _LineReader:
    """Lines of a streamed response, read by a daemon thread so the caller can poll its clocks
    and Ctrl-C while the server is silent. `next` gives a line (b"" at the end), None when
    nothing came within POLL seconds, or _STOPPED once `should_stop()` is true."""

    def __init__(self, response, max_line: int):
        self.response = response
        self.lines: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=64)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._pump, args=(max_line,), daemon=True)
        self.thread.start()

    def _pump(self, max_line: int) -> None:
        try:
            while not self.closed.is_set():
                try:
                    line = self.response.readline(max_line + 1)
                except Exception as exc:  # noqa: BLE001 - handed to the caller, who raises it
                    line = exc
                while not self.closed.is_set():
                    try:
                        self.lines.put(line, timeout=POLL)
                        break
                    except queue.Full:
                        continue
                if not isinstance(line, bytes) or not line or len(line) > max_line:
                    return
        finally:
            # the connection is closed by the thread that reads it, never under it
            with contextlib.suppress(Exception):
                self.response.close()

    def next(self, should_stop: Callable[[], bool] | None):
        if should_stop is not None and should_stop():
            return _STOPPED
        try:
            item = self.lines.get(timeout=POLL)
        except queue.Empty:
            return _STOPPED if should_stop is not None and should_stop() else None
        if isinstance(item, BaseException):
            raise RemoteError(f"the stream broke: {item}", where=self.response.geturl(),
                              hint=CONNECT_HINT) from None
        return item

    def close(self) -> None:
        self.closed.set()
        sock = _socket_of(self.response)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread out of recv
        self.thread.join(timeout=POLL * 4)


def _socket_of(response) -> socket.socket | None:
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _read_bounded(response, url: str, limit: int, ends: float) -> bytes:
    """The whole body, at most `limit` bytes, before the deadline `ends` (monotonic)."""
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > limit:
        raise RemoteError(f"the answer is {int(length) // 2**20} MB, more than {limit // 2**20} MB",
                          where=url, hint="is this an inference server of the kind named?")
    parts, size = [], 0
    try:
        while True:
            chunk = response.read1(65536)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise RemoteError(f"the answer is longer than {limit // 2**20} MB", where=url,
                                  hint="is this an inference server of the kind named?")
            if time.monotonic() > ends:
                raise RemoteError("the answer took longer than the deadline", where=url, hint=CONNECT_HINT)
    except (OSError, http.client.HTTPException) as exc:
        raise RemoteError(f"reading the answer failed: {exc}", where=url, hint=CONNECT_HINT) from None


def parse_json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        start = raw[:60].decode("utf-8", "replace").replace("\n", " ")
        raise RemoteError(f"the server's answer is not JSON (starts {start!r})", where=url,
                          hint="is this URL an inference server of the kind named?") from None


def _server_message(exc: urllib.error.HTTPError) -> str:
    """The server's error text: OpenAI-style {"error": {"message"}}, {"detail"}, or the body."""
    try:
        body = exc.read(2000)
    except OSError:
        body = b""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip().splitlines()
        return text[0][:200] if text else (exc.reason or "no message")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"]).splitlines()[0][:200]
    if isinstance(data, dict) and data.get("detail"):
        return str(data["detail"]).splitlines()[0][:200]
    return json.dumps(data)[:200]


def _status_hint(code: int) -> str:
    if code in (401, 403):
        return "the server wants an API key: set HARNESS_API_KEY"
    if code == 404:
        return "the server does not have this endpoint: is it the kind of server the URL names?"
    if code >= 500:
        return "the server failed on this request: see its log"
    return "the server refused the request: check the settings sent"
