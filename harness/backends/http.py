"""JSON over HTTP for the remote engines (stdlib only): requests, server-sent events, errors.

Every failure becomes one :class:`RemoteError` naming the URL and what to do: connection
refused or timed out, an HTTP error status (with the server's own message when it sends one),
a body that is not JSON.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from harness.errors import RemoteError

CONNECT_HINT = "check that the server is running and the URL is right"


class HttpClient:
    """One server's base URL, a timeout, and an optional bearer token."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key

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
            return urllib.request.urlopen(self._request(path, body), timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"HTTP {exc.code} from the server: {_server_message(exc)}", where=url,
                              hint=_status_hint(exc.code)) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, refused, timeouts
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the server: {reason}", where=url, hint=CONNECT_HINT,
                              unreachable=True) from None

    def get(self, path: str) -> Any:
        return self._read_json(path, None)

    def post(self, path: str, body: Any) -> Any:
        return self._read_json(path, body)

    def _read_json(self, path: str, body: Any | None) -> Any:
        with self._open(path, body) as response:
            raw = _read(response, self.base_url + path)
        return parse_json(raw, self.base_url + path)

    def stream(self, path: str, body: Any) -> Iterator[Any]:
        """POST and yield the JSON of each server-sent event's `data:` line until `[DONE]` or
        the end of the stream. Closing the generator closes the connection."""
        url = self.base_url + path
        response = self._open(path, body)
        try:
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise RemoteError(f"the stream broke: {exc}", where=url, hint=CONNECT_HINT) from None
                if not line:
                    return
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue  # blank separators, comments (": ping"), event names
                payload = text[5:].strip()
                if payload == "[DONE]":
                    return
                yield parse_json(payload.encode("utf-8"), url)
        finally:
            response.close()


def _read(response, url: str) -> bytes:
    try:
        return response.read()
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
        body = exc.read()[:2000]
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
