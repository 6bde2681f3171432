"""The real `harness chat` in a pseudo-terminal, interrupted and killed mid-turn, then resumed."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import pytest

from harness.turn_log import read_log
from tests.support.ptychat import Chat

pytestmark = pytest.mark.model

PROFILE = """model: smollm2
template: gguf
eos: ban
sampling:
  temperature: 0.8
  max_tokens: 600
"""


def _turns(log: Path) -> list[dict]:
    if log.exists():
        raw = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
        for line in raw[:-1]:
            json.loads(line)  # every line but a possibly torn last one is complete JSON
    return list(read_log(log)) if log.exists() else []


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_kill_mid_turn_loses_at_most_that_turn_and_resumes(tmp_path, how):
    profile = tmp_path / "long.yaml"
    profile.write_text(PROFILE)
    log = tmp_path / "chat.jsonl"
    rng = random.Random(how)

    first = Chat("--profile", str(profile), "--log", str(log))
    first.wait_for(b"user>")
    first.type("/set max_tokens 6")
    first.wait_for(b"max_tokens = 6")
    first.type("Hi")  # one complete turn before the kill
    first.wait_for(b"tok/s]")
    first.type("/set max_tokens 600")
    first.wait_for(b"max_tokens = 600")
    before = _turns(log)
    assert len(before) == 1
    first.type("Tell me a very long story about a dragon and a lighthouse.")
    first.wait_for(b"[assistant]", timeout=60)
    first.output = b""
    first.read(rng.uniform(0.2, 1.5))
    signum = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}.get(how, signal.SIGKILL)
    os.kill(first.proc.pid, signum)
    if how == "SIGINT":
        first.wait_for(b"[interrupted", timeout=30)  # generation stopped, the REPL did not
        first.type("/quit")
        assert first.finish() == 0
    else:
        first.finish()
        assert first.proc.returncode == -signum
    after = _turns(log)
    assert after[: len(before)] == before  # nothing already logged was lost or damaged
    assert len(after) - len(before) == (1 if how == "SIGINT" else 0)  # at most the turn in flight
    if how == "SIGINT":
        assert after[-1]["interrupted"] and after[-1]["stop_reason"] == "interrupted"

    saved = tmp_path / "resumed.json"
    second = Chat("--profile", str(profile), "--resume", str(log))
    second.wait_for(b"resumed")
    second.wait_for(b"user>")
    second.type(f"/save {saved}")
    second.wait_for(b"saved")
    second.type("/quit")
    assert second.finish() == 0
    assert json.loads(saved.read_text())["messages"] == after[-1]["messages"]
