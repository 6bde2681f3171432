"""End to end in a real terminal: `harness chat` in tmux — type a message, interrupt a generation
with Ctrl-C, branch at a token, quit — then check the session the REPL saved."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.support.tmux import TMUX_MARKS, Tmux

pytestmark = TMUX_MARKS

REPO = Path(__file__).resolve().parent.parent
PROFILE = """model: smollm2
template: gguf
eos: ban
n_ctx: 2048
sampling: {temperature: 0.8, seed: 3, max_tokens: 8}
"""


@pytest.fixture
def chat(tmp_path, harness_home):
    profile = tmp_path / "e2e.yaml"
    profile.write_text(PROFILE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_HOME": str(harness_home), "TERM": "xterm-256color"}
    tmux = Tmux([sys.executable, "-m", "harness", "chat", "--profile", str(profile)], env)
    yield tmux
    tmux.kill()


def test_type_interrupt_branch_quit_then_resume(chat, harness_home):
    chat.wait_for("user>", timeout=120)
    chat.type("Hi there")
    chat.wait_for("tok/s]")
    chat.type("/set max_tokens 1500")
    chat.wait_for("max_tokens = 1500")
    chat.type("Write a very long story about a dragon and a lighthouse.")
    chat.wait_for("[assistant]", count=2)
    end = time.monotonic() + 120
    while len(chat.screen().rsplit("[assistant]", 1)[-1].split()) < 6 and time.monotonic() < end:
        time.sleep(0.2)  # a few words streamed: the interrupt lands mid-generation
    chat.keys("C-c")
    chat.wait_for("[interrupted")
    chat.type("/set max_tokens 6")
    chat.wait_for("max_tokens = 6")
    chat.type("/tokens")
    chat.wait_for("/alts K, /branch K ALT")
    chat.type("/branch 1 2")
    chat.wait_for("tok/s]", count=3)
    chat.type("/quit")
    end = time.monotonic() + 30
    while chat.alive() and time.monotonic() < end:
        time.sleep(0.2)
    assert not chat.alive()  # the REPL left, the pane closed

    files = list((harness_home / "sessions").glob("*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text())
    messages = saved["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "Hi there"
    stops = [g["stop_reason"] for g in saved["generations"]]
    assert stops[:2] == ["max_tokens", "interrupted"] and len(stops) == 3
    interrupted, branched = saved["generations"][1], saved["generations"][2]
    assert branched["tokens"][0][0] == interrupted["tokens"][0][0]  # same first token
    assert branched["tokens"][1][0] == interrupted["tokens"][1][6][1]  # rank 2 at token 1
    nodes = {n["id"]: n for n in saved["tree"]["nodes"]}
    parent = nodes[[n for n in nodes.values() if n["message"] == messages[3]][0]["parent"]]
    assert len(parent["children"]) == 2  # the interrupted turn and its branch are both kept
    log = Path(saved["log"])
    assert len(log.read_text().splitlines()) == 3

    chat.kill()  # then resume the saved session by an ID prefix, in a new terminal
    again = Tmux([sys.executable, "-m", "harness", "chat", "--resume", files[0].stem[:15]], chat.env)
    try:
        again.wait_for("resumed 4 messages")
        again.wait_for("user>")
        again.type("/messages")
        again.wait_for("[2/2]")  # the branch is the chosen of two alternatives
        again.type("/swipe 1")
        again.wait_for("candidate 1 of 2")
        again.keys("C-d")  # Ctrl-D quits after saving
        end = time.monotonic() + 30
        while again.alive() and time.monotonic() < end:
            time.sleep(0.2)
    finally:
        again.kill()
    resumed = json.loads(files[0].read_text())
    chosen = [n for n in resumed["tree"]["nodes"] if n["message"] == resumed["messages"][3]]
    assert any(n["meta"].get("gen") == 1 for n in chosen)  # the interrupted turn is chosen again
    assert len(resumed["generations"]) == 3
