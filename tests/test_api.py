"""The Python API on the real SmolLM2: the documented example runs, each result's to_dict() is
what the CLI prints for the same call, candidates decode together, and no order of closing and
streaming crashes the process. tests/test_api_fake.py covers the same surface fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import harness
from harness.generation.turn import StreamEvent

pytestmark = pytest.mark.model

MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def _cli(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300, check=True)
    return json.loads(proc.stdout)


def _without_timing(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "timing"}


def test_the_readme_example_and_generate_json_parity(tmp_path):
    messages_file = tmp_path / "m.json"
    messages_file.write_text(json.dumps(MESSAGES))
    with harness.open("smollm2", template="chatml", threads=2) as m:
        r = m.render(MESSAGES, mode="reply")
        assert r.prompt.endswith("<|im_start|>assistant\n") and r.segments
        g = m.generate(MESSAGES, eos="ban", max_tokens=24, seed=1, temperature=0.8)
        assert g.text and g.stop_reason == "max_tokens" and len(g.tokens) == 24
        assert g.tokens[0].entropy_bits > 0 and g.tokens[0].role == "assistant"
        mine = g.to_dict()
    cli = _cli("generate", "--model", "smollm2", "--template", "chatml", "--messages", str(messages_file),
               "--eos", "ban", "--max-tokens", "24", "--seed", "1", "--temperature", "0.8", "--threads", "2",
               "--json")
    assert _without_timing(mine) == _without_timing(cli)


def test_score_and_stream(tmp_path):
    conversation = MESSAGES + [{"role": "assistant", "content": "Hello there!"}]
    messages_file = tmp_path / "m.json"
    messages_file.write_text(json.dumps(conversation))
    with harness.open("smollm2", threads=2) as m:
        s = m.score(conversation)
        assert set(s.roles) >= {"user", "assistant", "template"}
        assert s.to_dict() == _cli("score", "--model", "smollm2", "--messages", str(messages_file),
                                   "--threads", "2", "--json")
        stream = m.stream(MESSAGES, temperature=0, max_tokens=12)
        events = list(stream)
        assert events and all(isinstance(e, StreamEvent) for e in events)
        assert "".join(e.text for e in events) == stream.result.text
        early = m.stream(MESSAGES, temperature=0, max_tokens=40, eos="ban")
        for _ in early:
            break
        assert early.result.stop_reason == "interrupted"


def test_candidates_profiles_and_checked_settings_on_the_real_model():
    with harness.open("smollm2", profile="smollm2", threads=2, max_tokens=8) as m:
        assert m.defaults.eos == "continue" and m.defaults.max_tokens == 8  # profile, then open's defaults
        results = m.generate(MESSAGES, n=3, seed=11, temperature=1.0)
        assert [r.seed for r in results] == [11, 12, 13] and all(len(r.tokens) == 8 for r in results)
        assert len({r.text for r in results}) > 1
        assert m.generate(MESSAGES, seed=-1, max_tokens=2).seed is None
        for bad, field in (({"temperature": "hot"}, "temperature"), ({"logit_bias": {"Hi": True}}, "logit_bias.Hi"),
                           ({"max_tokens": -5}, "max_tokens"), ({"top_p": float("nan")}, "top_p")):
            with pytest.raises(harness.HarnessError) as err:
                m.generate(MESSAGES, **bad)
            assert err.value.field == field


LIFECYCLE = """
import sys, threading
import harness
M = [{"role": "user", "content": "Tell me a long story."}]
print("begin", flush=True)
with harness.open("smollm2", threads=2) as m:          # 1. leave before iterating a stream
    s = m.stream(M, max_tokens=64, eos="ban")
try:
    list(s)
except harness.HarnessError as exc:
    print("1 ok", exc, flush=True)
m = harness.open("smollm2", threads=2)                  # 2. close() during iteration
seen = 0
with m.stream(M, max_tokens=200, eos="ban") as s:
    for event in s:
        seen += 1
        if seen == 3:
            m.close()
print("2 ok", s.result.stop_reason, seen < 200, flush=True)
try:                                                    # 3. generate() after close()
    m.generate(M, max_tokens=4)
except harness.HarnessError as exc:
    print("3 ok", exc, flush=True)
with harness.open("smollm2", threads=2) as m:           # 4. a finished stream, twice
    s = m.stream(M, max_tokens=4)
    first, second = list(s), list(s)
    print("4 ok", len(first), len(second), flush=True)
    other = threading.Thread(target=lambda: list(m.stream(M, max_tokens=300, eos="ban")))
    other.start()                                       # 5. close() while another thread streams
print("5 ok", flush=True)
other.join(60)
print("end", other.is_alive(), flush=True)
"""


def test_the_lifecycle_never_crashes_the_process():
    """Each of these used to segfault, abort or hang (issue 26, 3); a subprocess, so a crash is
    seen as a crash."""
    proc = subprocess.run([sys.executable, "-c", LIFECYCLE], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert lines[1].startswith("1 ok") and "closed" in lines[1]
    assert lines[2] == "2 ok interrupted True"
    assert lines[3].startswith("3 ok") and "closed" in lines[3]
    assert lines[4] == "4 ok 4 0"
    assert lines[5:] == ["5 ok", "end False"]


def test_a_with_stream_broken_after_two_events_leaves_no_thread():
    import threading

    def streams() -> int:
        return sum(t.name == "harness stream" for t in threading.enumerate())

    with harness.open("smollm2", threads=2) as m:
        with m.stream(MESSAGES, max_tokens=64, eos="ban") as s:
            assert streams() == 0  # started by the first iteration, not before
            for i, _ in enumerate(s):
                if i == 1:
                    break
        assert streams() == 0 and s.result.stop_reason == "interrupted" and len(s.result.tokens) < 64
