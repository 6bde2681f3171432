"""JSON over HTTP for the remote engines (stdlib only): requests, server-sent events, errors.

Every failure becomes one :class:`RemoteError` naming the URL and what to do: connection
refused or timed out, an HTTP error status (with the server's own message when it sends one),
a body that is not JSON.

A server is data, not a trusted peer, so every exchange is bounded: a body is at most
``MAX_BODY`` bytes and an event line ``MAX_LINE``; a request has an idle timeout (no data for
``timeout`` seconds) *and* an overall ``deadline`` over the whole exchange (connecting and the
headers too: a watchdog shuts the socket when it passes); a stream is read by a helper thread so that
Ctrl-C (`should_stop`) ends a stalled stream within ``POLL`` seconds; and the API key goes only
to the origin it was given for (a redirect elsewhere drops it). An answer is JSON nested at most
``MAX_JSON_DEPTH`` deep (:mod:`harness.untrusted.inputs`).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import queue
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from harness.errors import RemoteError
from harness.untrusted import inputs

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
        if new is not None:  # the redirected request keeps the first one's deadline
            new.ends, new.timers = getattr(req, "ends", None), getattr(req, "timers", [])
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for key in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[key]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


class _Watched:
    """A connection shut down by a watchdog at its request's deadline (`ends`, monotonic), so a
    server that trickles its status line or headers cannot hold it past the deadline; the
    timers are cancelled once the headers are in (the body and streams watch their own clock)."""

    def __init__(self, *args: Any, ends: float | None = None, timers: list | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ends, self._timers = ends, timers if timers is not None else []

    def connect(self) -> None:
        if self._ends is not None and isinstance(self.timeout, int | float):
            self.timeout = max(0.05, min(self.timeout, self._ends - time.monotonic()))
        super().connect()
        if self._ends is not None:
            timer = threading.Timer(max(0.0, self._ends - time.monotonic()), self._expire)
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _expire(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTP(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPS(_Watched, http.client.HTTPSConnection):
    pass


def _watch(req: urllib.request.Request) -> dict[str, Any]:
    return {"ends": getattr(req, "ends", None), "timers": getattr(req, "timers", None)}


class _DeadlineHTTP(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTP, **_watch(req)), req)


class _DeadlineHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, tls: ssl.SSLContext | None = None):
        super().__init__(context=tls)
        self.tls = tls  # None: http.client's default context (certificates and host checked)

    def https_open(self, req):
        return self.do_open(functools.partial(_WatchedHTTPS, **_watch(req)), req, context=self.tls)


_OPENER = urllib.request.build_opener(_SameOriginAuth, _DeadlineHTTP, _DeadlineHTTPS)


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

    def _open(self, path: str, body: Any | None, ends: float):
        url = self.base_url + path
        request = self._request(path, body)
        request.ends, request.timers = ends, []  # type: ignore[attr-defined]
        try:
            return _OPENER.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"HTTP {exc.code} from the server: {_server_message(exc)}", where=url,
                              hint=_status_hint(exc.code), status=exc.code) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, timeouts
            if time.monotonic() >= ends:
                raise RemoteError(f"the request took longer than {self.deadline:g} s (no answer yet)",
                                  where=url, hint=CONNECT_HINT) from None
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the server: {reason}", where=url, hint=CONNECT_HINT,
                              unreachable=True) from None
        finally:
            for timer in request.timers:  # type: ignore[attr-defined]
                timer.cancel()

    def get(self, path: str) -> Any:
        return self._read_json(path, None)

    def post(self, path: str, body: Any) -> Any:
        return self._read_json(path, body)

    def _read_json(self, path: str, body: Any | None) -> Any:
        url = self.base_url + path
        ends = time.monotonic() + self.deadline
        with self._open(path, body, ends) as response:
            raw = _read_bounded(response, url, self.max_body, ends)
        return parse_json(raw, url)

    def stream(self, path: str, body: Any, should_stop: Callable[[], bool] | None = None) -> Iterator[Any]:
        """POST and yield the JSON of each server-sent event's `data:` line until `[DONE]` or
        the end of the stream; ends early (quietly) once `should_stop()` is true. Closing the
        generator closes the connection."""
        url = self.base_url + path
        ends = time.monotonic() + self.deadline
        response = self._open(path, body, ends)
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
        return inputs.parse_json(raw)
    except inputs.TooDeep:
        raise RemoteError(f"the server's answer is JSON nested more than {inputs.MAX_JSON_DEPTH} levels deep",
                          where=url, hint="is this URL an inference server of the kind named?") from None
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
        data = inputs.parse_json(body)
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
