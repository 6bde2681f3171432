"""The render worker: every chat template renders in a separate, limited process.

A template embedded in a downloaded GGUF is code from a stranger. The immutable Jinja sandbox
keeps it away from Python internals; it does not stop it looping for ever, allocating gigabytes
or nesting deeper than Python's compiler goes. So templates render here, not in harness:

- one worker process, started on the first render as ``python -c`` (fork + exec, never a bare
  fork of a parent that may hold llama.cpp threads), importing only jinja2 and harness.prompt.templates;
- inside it: address space capped at ``MEMORY_LIMIT_BYTES``, a CPU-time backstop, no core
  files, no file growth, and an audit hook refusing process creation, file writes, network and
  ctypes — a second wall should the sandbox ever be escaped;
- the parent sends ``(source, name, messages, add_generation_prompt, variables, now)`` as JSON (so
  only plain data crosses, never a callable) and waits ``RENDER_TIMEOUT_S``; on timeout or death
  it kills the worker, raises :class:`TemplateError`, and the next render starts a fresh one;
- compiled templates stay cached in the worker: a render costs one pipe round trip.

Frames are a 4-byte little-endian length and a payload. Parent to worker: the JSON request.
Worker to parent: ``R`` (ready), ``T`` + UTF-8 text, or ``E`` + JSON ``[message, where, hint]``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import json
import os
import selectors
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import TemplateError, TemplateLimitError

if TYPE_CHECKING:
    import subprocess

RENDER_TIMEOUT_S = 1.5  # wall clock for one render, compile included
STARTUP_TIMEOUT_S = 30.0  # a cold interpreter importing jinja2 on a loaded machine
MEMORY_LIMIT_BYTES = 1 << 30  # RLIMIT_AS of the worker
CPU_BACKSTOP_S = 5  # RLIMIT_CPU beyond what the worker has used, should the parent vanish
MAX_REPLY_BYTES = 64 << 20  # a sanity bound; harness.prompt.templates caps output at 8 M characters

_HEADER = struct.Struct("<I")
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
_BOOTSTRAP = "from harness.prompt.render_worker import main; main()"
_STOP_HINT = "this template is hostile or broken; do not use it"


class _Timeout(Exception):
    """No complete reply before the deadline."""


class _Died(Exception):
    """The worker's end of the pipe closed."""


# --- the parent's side -------------------------------------------------------------------------


def render(source: str, name: str, messages: Sequence[Mapping[str, Any]], *,
           add_generation_prompt: bool, variables: Mapping[str, Any] | None, now: str | None = None) -> str:
    """Render in the shared worker; every failure is a :class:`TemplateError`. `now` pins
    ``strftime_now`` to an ISO date-time."""
    request = _encode_request(source, name, messages, add_generation_prompt, variables, now)
    return shared_worker().render(request, name)


@functools.lru_cache(maxsize=1)
def shared_worker() -> RenderWorker:
    worker = RenderWorker()
    atexit.register(worker.close)
    return worker


def _encode_request(source: str, name: str, messages: Sequence[Mapping[str, Any]],
                    add_generation_prompt: bool, variables: Mapping[str, Any] | None,
                    now: str | None = None) -> bytes:
    try:
        text = json.dumps([source, name, list(messages), bool(add_generation_prompt),
                           dict(variables or {}), now], default=_plain)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"messages and template variables must be plain data: {exc}",
                            hint="strings, numbers, booleans, lists and mappings only") from None
    return text.encode("ascii")


def _plain(value: Any) -> Any:
    """JSON's fallback: other mappings and sequences become dicts and lists; YAML dates their text."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return list(value)
    if isinstance(value, datetime.date | datetime.time):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


class RenderWorker:
    """One worker process, started on first use and again after it was stopped."""

    def __init__(self, timeout_s: float = RENDER_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None  # subprocess: imported when needed
        self._owner = 0  # pid that started the worker; a forked child must not share it
        self._to_worker = self._from_worker = -1
        self._selector: selectors.BaseSelector | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._running() else None

    def render(self, request: bytes, name: str) -> str:
        with self._lock:
            if not self._running():
                self._start()
            try:
                _write_frame(self._to_worker, request)
                reply = self._read_frame(time.monotonic() + self.timeout_s)
            except _Timeout:
                self.stop()
                raise TemplateLimitError(f"render took too long (stopped after {self.timeout_s:g} s)",
                                    where=name, hint=_STOP_HINT) from None
            except (_Died, OSError):
                code = self.stop()
                raise TemplateLimitError(f"render used too much memory or crashed the render worker "
                                    f"({_describe_exit(code)})", where=name, hint=_STOP_HINT) from None
            except BaseException:  # Ctrl-C mid-render: the reply would answer the next request
                self.stop()
                raise
        return self._decode(reply, name)

    def stop(self) -> int | None:
        """Kill the worker (the next render starts another); returns its exit status."""
        proc, self._proc = self._proc, None
        code = None
        if proc is not None and self._owner == os.getpid():
            proc.kill()
            code = proc.wait()
        self._close_pipes()
        return code

    def close(self) -> None:
        """End the worker politely: it exits when its input closes."""
        proc, self._proc = self._proc, None
        self._close_pipes()
        if proc is not None and self._owner == os.getpid():
            import subprocess

            try:
                proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _running(self) -> bool:
        return (self._proc is not None and self._owner == os.getpid()
                and self._proc.poll() is None)

    def _start(self) -> None:
        self.stop()
        self._proc, self._to_worker, self._from_worker = _spawn()
        self._owner = os.getpid()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._from_worker, selectors.EVENT_READ)
        try:
            ready = self._read_frame(time.monotonic() + STARTUP_TIMEOUT_S)
        except (_Timeout, _Died, OSError) as exc:
            code = self.stop()
            problem = "timed out" if isinstance(exc, _Timeout) else _describe_exit(code)
            raise TemplateError(f"the render worker did not start ({problem})",
                                hint=f"check that {sys.executable} can import jinja2") from None
        except BaseException:  # Ctrl-C while it starts: its "ready" would pass for a reply
            self.stop()
            raise
        if ready != b"R":
            self.stop()
            raise TemplateError(f"the render worker did not start: {ready[1:].decode(errors='replace')}")

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = _HEADER.unpack(self._read_exactly(_HEADER.size, deadline))
        if size > MAX_REPLY_BYTES:
            raise _Died
        return self._read_exactly(size, deadline)

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._selector.select(remaining):  # type: ignore[union-attr]
                raise _Timeout
            chunk = os.read(self._from_worker, min(size, 1 << 20))
            if not chunk:
                raise _Died
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _decode(self, reply: bytes, name: str) -> str:
        kind, body = reply[:1], reply[1:]
        if kind == b"T":
            return body.decode("utf-8", "surrogatepass")
        if kind == b"E":
            try:
                message, where, hint = json.loads(body)
            except (ValueError, TypeError):
                pass
            else:
                raise TemplateError(str(message), where=where, hint=hint)
        self.stop()
        raise TemplateError("the render worker sent a malformed reply", where=name, hint=_STOP_HINT)

    def _close_pipes(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        for fd in (self._to_worker, self._from_worker):
            if fd >= 0:
                os.close(fd)
        self._to_worker = self._from_worker = -1


def _spawn() -> tuple[subprocess.Popen[bytes], int, int]:
    """Start ``python -c`` on the worker (fork + exec: nothing of the parent's state comes
    along); returns the process and the parent's ends of the request and reply pipes."""
    import subprocess

    child_in, to_worker = os.pipe()
    from_worker, child_out = os.pipe()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-s", "-c", _BOOTSTRAP, str(child_in), str(child_out)],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)  # Ctrl-C at the terminal is the parent's, not the worker's
    except (OSError, ValueError) as exc:  # ValueError: no pass_fds on this platform
        for fd in (child_in, to_worker, from_worker, child_out):
            os.close(fd)
        raise TemplateError(f"cannot start the render worker: {exc}",
                            hint=f"templates render with {sys.executable}") from None
    os.close(child_in)
    os.close(child_out)
    return proc, to_worker, from_worker


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


# --- the worker's side -------------------------------------------------------------------------

_REFUSED_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                   "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
                   "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
                   "os.truncate", "os.chmod", "os.chown", "os.utime", "os.putenv", "os.unsetenv",
                   "shutil.", "socket.", "ctypes.", "webbrowser.", "sys.addaudithook")
_REFUSED_IMPORTS = {"subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing", "pty",
                    "socket", "_socket", "ssl", "ctypes", "_ctypes"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def main() -> None:
    """Worker entry point: ``python -c ... READ_FD WRITE_FD``."""
    requests, replies = int(sys.argv[1]), int(sys.argv[2])
    try:
        _limit_resources()
        from harness.prompt.sandbox import render_sandboxed  # jinja2 loads under the limits

        _warm_up(render_sandboxed)
        sys.addaudithook(_audit)
    except BaseException as exc:  # reported to the parent, which raises
        _write_frame(replies, b"E" + f"{type(exc).__name__}: {exc}".encode(errors="replace"))
        return
    _write_frame(replies, b"R")
    while (request := _read_request(requests)) is not None:
        _extend_cpu_backstop()
        _write_frame(replies, handle(request, render_sandboxed))


def handle(request: bytes, render_sandboxed: Callable[..., str]) -> bytes:
    """One request in, one reply out, whatever the template does."""
    name = "template"
    try:
        source, name, messages, add_generation_prompt, variables, now = json.loads(request)
        text = render_sandboxed(source, name, messages, add_generation_prompt=add_generation_prompt,
                                variables=variables, now=now)
        return b"T" + text.encode("utf-8", "surrogatepass")
    except TemplateError as exc:
        return _error_reply(exc.message, exc.where, exc.hint)
    except BaseException as exc:  # nothing a template raises may end the worker
        return _error_reply(f"render failed: {_describe(exc)}", name, None)


def _error_reply(message: str, where: str | None, hint: str | None) -> bytes:
    return b"E" + json.dumps([message[:2000], where, hint]).encode("ascii")


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a hostile __str__
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_request(fd: int) -> bytes | None:
    header = _read_exactly_blocking(fd, _HEADER.size)
    if header is None:
        return None  # the parent closed the pipe or exited
    return _read_exactly_blocking(fd, _HEADER.unpack(header)[0])


def _read_exactly_blocking(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _limit_resources() -> None:
    """Memory, core files and file sizes for good; CPU per request (:func:`_extend_cpu_backstop`)."""
    try:
        import resource
    except ImportError:  # not POSIX: the parent's deadline is the only limit
        return
    limits = {resource.RLIMIT_AS: MEMORY_LIMIT_BYTES, resource.RLIMIT_CORE: 0,
              resource.RLIMIT_FSIZE: 0}
    for kind, value in limits.items():
        _, hard = resource.getrlimit(kind)
        soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
        with contextlib.suppress(OSError, ValueError):  # e.g. RLIMIT_AS on macOS: the deadline holds
            resource.setrlimit(kind, (soft, hard))


def _extend_cpu_backstop() -> None:
    """RLIMIT_CPU counts the worker's whole life: move it to a few seconds past now."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(time.process_time()) + CPU_BACKSTOP_S
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ImportError, OSError, ValueError):
        pass


def _warm_up(render_sandboxed: Callable[..., str]) -> None:
    """Import now what jinja2 imports on first use, so renders neither pay for it nor import."""
    render_sandboxed("{% for m in messages %}{{ m.content | tojson }}{% endfor %}", "warm-up",
                     [{"role": "user", "content": "hi"}], add_generation_prompt=True, variables={})
    with contextlib.suppress(TemplateError):  # loads jinja2's traceback rewriting
        render_sandboxed("{{ raise_exception('x') }}", "warm-up", [], add_generation_prompt=False,
                         variables={})


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Refuse side effects outside the process; the sandbox should never let a template try."""
    if event == "open":
        mode, flags = args[1], args[2]
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writes:
            raise PermissionError(f"the render worker does not write files ({args[0]!r})")
    elif event == "import" and args[0].partition(".")[0] in _REFUSED_IMPORTS:
        raise PermissionError(f"the render worker does not import {args[0]}")
    elif event.startswith(_REFUSED_EVENTS):
        raise PermissionError(f"the render worker refuses {event}")
