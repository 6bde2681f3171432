"""The Python API on the real SmolLM2: the README example runs, and each result's to_dict() is
what the CLI prints for the same call."""

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


def test_unknown_sampling_settings_are_refused():
    with pytest.raises(harness.HarnessError, match="unknown sampling setting"):
        harness.api.Model.sampling(temprature=0.5)
