"""A fake backend that fails loudly where llama.cpp would crash: used after close, or by two
threads at once. Each decode can be slowed so a test can act while a turn is running."""

from __future__ import annotations

import threading
import time

from harness.backends.fake import FakeBackend


class UseAfterClose(AssertionError):
    """The model was used after it was closed (a segfault on a real model)."""


class GuardedBackend(FakeBackend):
    def __init__(self, script: str = "", *, decode_seconds: float = 0.0, **kwargs):
        self.decode_seconds = decode_seconds
        self.closed = False
        self.misuse: list[str] = []
        self._busy = threading.Lock()
        self.decoding = threading.Event()  # set once a decode has started
        super().__init__(script, **kwargs)

    def _guard(self, what: str) -> None:
        if self.closed:
            self.misuse.append(f"{what} after close")
            raise UseAfterClose(what)

    def decode(self, tokens, *, all_logits):
        self._guard("decode")
        if not self._busy.acquire(blocking=False):
            self.misuse.append("two decodes at once")
            raise AssertionError("two decodes at once")
        try:
            self.decoding.set()
            if self.decode_seconds:
                time.sleep(self.decode_seconds)
            return super().decode(tokens, all_logits=all_logits)
        finally:
            self._busy.release()

    def piece(self, token: int) -> bytes:
        self._guard("piece")
        return super().piece(token)

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        self._guard("tokenize")
        return super().tokenize(text, special)

    def close(self) -> None:
        self._guard("close")
        self.closed = True
        super().close()
