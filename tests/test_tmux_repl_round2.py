"""The REPL, round two (issue 23), end to end as a user meets it: `harness chat` on SmolLM2 in a
real terminal (tmux), each finding typed as a user would type it, then checked on what the model
was given and what was kept — the prompt of every turn in the turn log, the saved session, and
the saved conversation rendered again by the template — not on the screen alone."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from harness.prompt.templates import load_template
from tests.support.tmux import TMUX_MARKS, Tmux

pytestmark = TMUX_MARKS

REPO = Path(__file__).resolve().parent.parent
PROFILE = """model: smollm2
template: gguf
n_ctx: 1024
sampling: {temperature: 0.8, seed: 3, max_tokens: 10}
"""
NULL_CALL = json.dumps({"role": "assistant", "content": None, "tool_calls": [
    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]})


@pytest.fixture
def start(tmp_path, harness_home):
    profile = tmp_path / "round2.yaml"
    profile.write_text(PROFILE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_HOME": str(harness_home), "TERM": "xterm-256color"}
    started: list[Tmux] = []

    def open_chat(width: int = 160) -> Tmux:
        tmux = Tmux([sys.executable, "-m", "harness", "chat", "--profile", str(profile)], env, width=width)
        started.append(tmux)
        tmux.wait_for("user>", timeout=120)
        return tmux

    yield open_chat
    for tmux in started:
        tmux.kill()


def kept(harness_home: Path) -> tuple[dict, list[dict]]:
    """The saved session and its turn log (one line per generated turn, with its prompt)."""
    files = list((harness_home / "sessions").glob("*.json"))
    assert len(files) == 1
    session = json.loads(files[0].read_text())
    return session, [json.loads(line) for line in Path(session["log"]).read_text().splitlines()]


def bare(text: str) -> str:
    """Text without blanks, newlines or the marks that draw them (for text wrapped on screen)."""
    return re.sub(r"[\s·↵→│]", "", text)


def test_raw_template_replies_re_render_with_one_space_after_assistant(start, harness_home):
    chat = start()
    chat.type("/template raw")
    chat.wait_for("template: raw")
    chat.type("What is the capital of France?")
    chat.wait_for("tok/s]")
    chat.type("And the capital of Italy?")
    chat.wait_for("tok/s]", count=2)
    chat.quit()

    session, log = kept(harness_home)
    replies = [m["content"] for m in session["messages"] if m["role"] == "assistant"]
    assert len(replies) == 2 and all(r and not r.startswith(" ") for r in replies)
    assert all(turn["round_trip"] for turn in log)  # each stored reply re-renders as the model wrote it
    second = log[1]["prompt"]  # what the model was given for the second reply
    assert f"Assistant: {replies[0]}" in second and "Assistant:  " not in second
    rendered = load_template("raw").render(session["messages"], add_generation_prompt=True)
    assert rendered.count("Assistant: ") == 2 and "Assistant:  " not in rendered
    for turn, reply in zip(log, replies, strict=True):  # the model's own space is the template's one
        assert (turn["prompt"] + turn["text"]).startswith(turn["prompt"].rstrip(" ") + " " + reply.split()[0])


def test_the_round_two_findings_typed_in_a_terminal(start, harness_home):
    chat = start(width=80)  # candidates stacked, each whole
    chat.type("Hi")
    chat.wait_for("tok/s]")

    # an unrenderable insert is refused in one line; the next line is answered
    chat.type(f"/insert 2 {NULL_CALL}")
    chat.wait_for("cannot render the conversation at message 2")
    chat.type("What is 2+2?")
    chat.wait_for("tok/s]", count=2)
    assert "inserted" not in chat.screen()

    # /bias 2 is the text "2" (token 34); /bias #2 the id 2 (<|im_end|>)
    chat.type("/bias 2 -3")
    chat.wait_for('"2" = #34  -3')
    chat.type("/bias #2 -3")
    chat.wait_for("#2 '<|im_end|>'  -3")

    # a quoted prefill with \n sends a newline (after the user's line: the reply is deleted first)
    chat.type("/delete 3")
    chat.wait_for("deleted message 3")
    chat.type('/prefill "<think>\\n"')
    chat.wait_for("tok/s]", count=3)

    # /retry 3: three whole candidates, Enter keeps the chosen one, one /undo takes all three back
    chat.type("/retry 3")
    screen = chat.wait_for("keep which?")
    shown = bare(screen.rsplit("generating 3 candidates together", 1)[-1])
    chat.keys("Enter")
    chat.type("/undo")
    chat.wait_for("undone; 4 messages")

    # n_ctx 10 then a message: a one-line error, the process alive, nothing kept of the line
    chat.type("/set n_ctx 10")
    chat.wait_for("n_ctx = 10")
    chat.type("Hello again")
    chat.wait_for("error: the prompt is")
    chat.type("/set n_ctx 1024")
    chat.wait_for("n_ctx = 1024")
    chat.type("Bye")
    chat.wait_for("tok/s]", count=4)
    assert "Traceback" not in chat.screen()
    chat.quit()

    session, log = kept(harness_home)
    messages = session["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert [messages[i]["content"] for i in (0, 2, 4)] == ["Hi", "What is 2+2?", "Bye"]
    assert all(m.get("content") is not None and "tool_calls" not in m for m in messages)  # no insert kept
    assert [turn["mode"] for turn in log] == ["reply", "reply", "prefill", "prefill", "prefill", "prefill", "reply"]
    assert "get_weather" not in log[1]["prompt"] and log[1]["prompt"].endswith("What is 2+2?<|im_end|>\n"
                                                                             "<|im_start|>assistant\n")
    assert session["settings"]["logit_bias"] == {"2": -3.0, "#2": -3.0}
    assert all(turn["settings"]["logit_bias"] == {"2": -3.0, "#2": -3.0} for turn in log[2:])

    prefill = log[2]
    assert prefill["prompt"].endswith("<|im_start|>assistant\n<think>\n") and "\\n" not in prefill["prompt"]
    assert messages[3]["content"].startswith("<think>\n")  # kept as written: this template has no reasoning field
    assert prefill["round_trip"] and messages[3] == prefill["message"]
    assert load_template("gguf", embedded=session_template(session)).render(
        messages[:4], add_generation_prompt=False).startswith(prefill["prompt"] + prefill["text"])

    candidates = log[3:6]
    assert [turn["settings"]["seed"] for turn in candidates] == [4, 5, 6]
    for turn in candidates:  # each shown whole, and each stored as the message that round-trips
        assert turn["prompt"] == prefill["prompt"] and turn["round_trip"]
        content = turn["message"]["content"]
        assert content.startswith("<think>\n") and len(bare(content)) > len("<think>")
        assert bare(content) in shown
    assert len(session["generations"]) == 7
    nodes = {n["id"]: n for n in session["tree"]["nodes"]}
    chosen = next(n for n in nodes.values() if n["message"] == messages[3])
    assert len(nodes[chosen["parent"]]["children"]) == 1  # /undo took all three candidates back
    assert "Hello again" not in json.dumps(session)  # the refused line left nothing behind
    assert log[6]["prompt"].endswith("Bye<|im_end|>\n<|im_start|>assistant\n")


def session_template(session: dict) -> str:
    """The chat template embedded in the model the session ran (read from the GGUF's header)."""
    from harness.models.gguf import read_gguf_info
    from harness.models.registry import resolve_model

    template = read_gguf_info(resolve_model(session["model_spec"])[1]).chat_template
    assert template
    return template
