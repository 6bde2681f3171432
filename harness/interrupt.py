"""Ctrl-C during generation: a flag the token loop polls instead of an exception mid-step."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def sigint_flag() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT sets a flag (returned as a callable) instead of raising."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return

    def handler(signum, frame):  # noqa: ARG001
        flag.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
