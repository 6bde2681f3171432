"""A private tmux server running one command: keys in, the screen out."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest

TMUX_MARKS = [pytest.mark.model, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Tmux:
    """One private tmux server (its own socket) running one command."""

    def __init__(self, command: list[str], env: dict[str, str]):
        self.socket = f"harness-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        self.run("new-session", "-d", "-s", "chat", "-x", "160", "-y", "50", *command)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, capture_output=True,
                              text=True, timeout=30)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "chat", "-S", "-500").stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "chat", *keys)

    def type(self, line: str) -> None:
        self.keys("-l", line)
        self.keys("Enter")

    def wait_for(self, text: str, count: int = 1, timeout: float = 120.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if not self.alive():
                break
            time.sleep(0.2)
        raise AssertionError(f"never saw {text!r} x{count}; screen:\n{self.screen()[-2000:]}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", "chat").returncode == 0

    def kill(self) -> None:
        self.run("kill-server")
