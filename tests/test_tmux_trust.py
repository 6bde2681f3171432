"""Issue 14 end to end in a real terminal, on SmolLM2: a reply, a run past end of turn into the
next user turn, /adopt, /impersonate, /prefill, /continue, /retry twice, /branch, type-ahead and
Ctrl-C mid-turn, quit, resume — then every message in the saved session is checked against the
turn log: exactly what the model was given, or what it wrote."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.support.tmux import TMUX_MARKS, Tmux

pytestmark = TMUX_MARKS

PROFILE = """model: smollm2
template: gguf
eos: stop
n_ctx: 2048
sampling: {temperature: 0.8, seed: 3, max_tokens: 48}
"""
OPEN, CLOSE = "<|im_start|>", "<|im_end|>"


@pytest.fixture
def terminal(tmp_path, harness_home):
    import os

    profile = tmp_path / "trust.yaml"
    profile.write_text(PROFILE)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "HARNESS_HOME": str(harness_home), "TERM": "xterm-256color"}
    started: list[Tmux] = []

    def start(*args: str) -> Tmux:
        tmux = Tmux([sys.executable, "-m", "harness", "chat", "--threads", "2", *args], env)
        tmux.run("set-option", "-t", "chat", "remain-on-exit", "on")  # the goodbye line stays readable
        started.append(tmux)
        return tmux

    yield start, profile
    for tmux in started:
        tmux.kill()


def test_keys_typed_while_streaming_wait_for_the_next_prompt(terminal):
    """Bug 14: keys typed during a turn are neither echoed into it nor lost (Ctrl-C included)."""
    start, profile = terminal
    chat = start("--profile", str(profile))
    chat.wait_for("user>", timeout=180)
    chat.type("/set max_tokens 400")
    chat.wait_for("max_tokens = 400")
    chat.type("Tell me a long story about a lighthouse keeper.")
    chat.wait_for("[assistant]")
    end = time.monotonic() + 120
    while len(chat.screen().rsplit("[assistant]", 1)[-1].split()) < 4 and time.monotonic() < end:
        time.sleep(0.2)
    chat.keys("-l", "/entropy")
    time.sleep(1.0)
    chat.keys("C-c")
    chat.wait_for("[interrupted")
    streamed = chat.screen().rsplit("[assistant]", 1)[-1].split("[interrupted")[0]
    assert "/entropy" not in streamed
    chat.wait_for("user> /entropy")
    chat.keys("Enter")
    chat.wait_for("session (generated)")


def _wait_exit(tmux: Tmux) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if tmux.run("display-message", "-p", "-t", "chat", "#{pane_dead}").stdout.strip() == "1":
            return
        time.sleep(0.2)
    raise AssertionError("the REPL did not leave:\n" + tmux.screen()[-1500:])


def _writer_part(text: str) -> tuple[str, bool]:
    """The text up to where the writer closed its turn, and whether the model went past it."""
    cut = min((i for i in (text.find(CLOSE), text.find(OPEN)) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def _expected(record: dict, base: str) -> str:
    given = {"prefill": record.get("given", ""), "impersonate": record.get("given", "")}
    full = given.get(record["mode"], "") + base + record["text"]
    part, past = _writer_part(full)
    return part.rstrip() if past else part


def test_every_message_is_what_the_model_was_given_or_wrote(terminal, harness_home):
    start, profile = terminal
    chat = start("--profile", str(profile))
    chat.wait_for("user>", timeout=180)
    steps = [("Hi there", "tok/s]"), ("/eos continue", "EOS policy: continue"),
             ("Name three fruits.", "tok/s]"), ("/adopt", "adopted the model's user message"),
             ("/eos stop", "EOS policy: stop"), ("/reply", "tok/s]"),
             ("/impersonate I think", "tok/s]"), ("/prefill Sure,", "tok/s]"), ("/continue", "tok/s]"),
             ("/retry", "tok/s]"), ("/retry", "tok/s]"), ("/tokens", "/alts K, /branch K ALT"),
             ("/branch 1 2", "tok/s]"), ("/set max_tokens 1500", "max_tokens = 1500")]
    for line, done in steps:
        count = chat.screen().count(done) + 1
        chat.type(line)
        chat.wait_for(done, count=count, timeout=400)  # 1-5 tok/s on a loaded machine
    screen = chat.screen()
    assert "only the assistant turn was kept" in screen
    assert "[assistant] Sure," in screen  # the prefill is shown as given
    assert "seed 3 -> " in screen  # each retry moved the fixed seed on

    chat.type("Write a very long story about a dragon and a lighthouse.")
    chat.wait_for("[assistant]", count=screen.count("[assistant]") + 1)
    end = time.monotonic() + 120
    while len(chat.screen().rsplit("[assistant]", 1)[-1].split()) < 6 and time.monotonic() < end:
        time.sleep(0.2)
    chat.keys("-l", "/entropy")  # typed while the model streams: kept for the next prompt
    time.sleep(0.5)
    chat.keys("C-c")
    chat.wait_for("[interrupted")
    streamed = chat.screen().rsplit("[assistant]", 1)[-1].split("[interrupted")[0]
    assert "/entropy" not in streamed  # not echoed into the transcript
    chat.keys("Enter")  # the prompt already holds "/entropy"
    chat.wait_for("session (generated)")
    chat.type("/quit")
    _wait_exit(chat)
    assert "resume: harness chat --resume" in chat.screen()

    files = list((harness_home / "sessions").glob("*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text())
    log = [json.loads(line) for line in Path(saved["log"]).read_text().splitlines()]
    assert len(log) == len(saved["generations"]) == 10
    nodes = {n["id"]: n for n in saved["tree"]["nodes"]}
    typed = {"Hi there", "Name three fruits.", "Write a very long story about a dragon and a lighthouse."}
    adopted = 0
    for node in nodes.values():
        message, meta = node["message"], node["meta"]
        if message is None:
            continue
        if meta.get("adopted"):
            source = log[nodes[node["parent"]]["meta"]["gen"]]["text"]
            turn = source.split(f"{OPEN}user\n", 1)[1]
            assert message["content"] == _writer_part(turn)[0].strip()
            adopted += 1
        elif "gen" in meta:
            record = {**log[meta["gen"]], "given": meta.get("text", "")}
            base = meta.get("base", {}).get("content", "")
            assert message["content"] == _expected(record, base), (meta, record["text"])
            if base:  # a continue's prompt holds the continued text once, at its end
                assert record["prompt"].endswith(base) and record["prompt"].count(base) == 1
        else:
            assert message["content"] in typed
    assert adopted == 1
    for record in log:  # every prompt holds every message the turn was given
        for message in record["messages_before"]:
            assert message["content"] in record["prompt"]
    roles = [m["role"] for m in saved["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant",
                     "user", "assistant"]
    assert saved["generations"][-1]["stop_reason"] == "interrupted"
    candidates = [n for n in nodes.values() if n["meta"].get("mode") in ("prefill", "continue")]
    assert len(candidates) == 5  # prefill, continue, two retries of the continue, the branch

    again = start("--resume", files[0].stem)
    again.wait_for("resumed 10 messages")
    again.wait_for("user>")
    again.type("/raw")
    again.wait_for("special tokens reversed")
    assert "Hi there" in again.screen()
    again.keys("C-d")
    _wait_exit(again)
    assert "session saved to" in again.screen()
    assert json.loads(files[0].read_text())["messages"] == saved["messages"]
