"""Drive the real `harness chat` on a pseudo-terminal (tests and bench/stress_kills.py)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time


class Chat:
    """`harness chat` on a pty: type lines, wait for text, send signals."""

    def __init__(self, *args: str):
        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
        self.proc = subprocess.Popen([sys.executable, "-m", "harness", "chat", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True, start_new_session=True)
        os.close(slave)
        self.output = b""

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    return

    def wait_for(self, text: bytes, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError(f"never saw {text!r}; output tail: {self.output[-600:]!r}")
            self.read(0.1)

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.read(0.2)
            os.close(self.master)
