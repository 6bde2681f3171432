"""The real `harness` command end to end, as a subprocess: contracts and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import harness, write_messages

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


@pytest.fixture
def hello(tmp_path) -> Path:
    return write_messages(tmp_path / "hello.json", HELLO)


def test_render_prints_exactly_the_prompt(hello):
    out = harness("render", "--template", "chatml", "--messages", str(hello)).stdout
    assert out == "<|im_start|>user\nSay hello in one short sentence.<|im_end|>\n<|im_start|>assistant\n"


def test_render_json_segments_and_vars(tmp_path):
    yaml_file = tmp_path / "m.yaml"
    yaml_file.write_text("messages:\n  - role: user\n    content: Hi\n")
    data = json.loads(harness("render", "--template", "llama3", "--messages", str(yaml_file),
                              "--var", 'bos_token="<B>"', "--mode", "impersonate", "--prefill", "Well",
                              "--json").stdout)
    assert data["prompt"] == ("<B><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nWell")
    segs = data["segments"]
    assert [s["role"] for s in segs] == ["template", "user", "template", "user"]
    assert all(set(s) == {"start", "end", "role", "kind"} for s in segs)


@pytest.mark.model
def test_render_with_model_uses_embedded_template_and_bos(hello):
    out = harness("render", "--model", "smollm2", "--messages", str(hello), "--mode", "as-is").stdout
    assert out.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert out.endswith("<|im_start|>user\nSay hello in one short sentence.<|im_end|>\n")


@pytest.mark.model
def test_generate_json_contract_run_past_eos(hello):
    data = json.loads(harness("generate", "--model", "smollm2", "--messages", str(hello), "--eos", "continue",
                              "--seed", "6", "--max-tokens", "50", "--json").stdout)
    assert data["stop_reason"] == "max_tokens" and len(data["tokens"]) == 50
    token = data["tokens"][0]
    assert set(token) >= {"id", "piece", "role", "entropy_bits", "surprisal_bits", "eot_prob", "top"}
    assert len(token["top"]) == 5 and all(len(pair) == 2 for pair in token["top"])
    roles = [t["role"] for t in data["tokens"]]
    assert roles[0] == "assistant" and "user" in roles
    assert roles.index("user") > max(i for i, r in enumerate(roles[: roles.index("user")]) if r == "assistant")
    assert {"assistant", "user"} <= set(data["roles"])
    summary = data["roles"]["assistant"]
    assert set(summary) == {"tokens", "mean_entropy_bits", "mean_surprisal_bits", "perplexity"}
    assert summary["perplexity"] == pytest.approx(2 ** summary["mean_surprisal_bits"])
    assert data["text"] == "".join(t["piece"] for t in data["tokens"])


@pytest.mark.model
def test_generate_ban_and_stop_strings(hello):
    data = json.loads(harness("generate", "--model", "smollm2", "--messages", str(hello), "--eos", "ban",
                              "--seed", "2", "--max-tokens", "40", "--json", "--bias", "<|im_start|>=-inf").stdout)
    assert not any(t["piece"] in ("<|im_end|>", "<|endoftext|>", "<|im_start|>") for t in data["tokens"])
    plain = harness("generate", "--model", "smollm2", "--messages", str(hello), "--temperature", "0",
                    "--max-tokens", "30", "--stop", "!").stdout
    assert "!" not in plain and plain.strip()


@pytest.mark.model
def test_score_json_contract(tmp_path):
    conv = write_messages(tmp_path / "c.json", [{"role": "user", "content": "Hi"},
                                                {"role": "assistant", "content": "Hello! How can I help?"}])
    data = json.loads(harness("score", "--model", "smollm2", "--messages", str(conv), "--json").stdout)
    assert data["tokens"][0]["entropy_bits"] is None
    assert all(t["entropy_bits"] is not None for t in data["tokens"][1:])
    assert set(data["roles"]) == {"user", "assistant", "template"}
    assert data["roles"]["assistant"]["tokens"] == sum(t["role"] == "assistant" for t in data["tokens"])


@pytest.mark.model
def test_models_lists_both_bundled_models():
    rows = json.loads(harness("models", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    smol = by_name["smollm2"]
    assert (smol["architecture"], smol["n_vocab"], smol["chat_template"]) == ("llama", 49152, True)
    assert "<|im_end|>" in smol["eog"]
    gemma = by_name["gemma3-270m"]
    assert (gemma["architecture"], gemma["n_vocab"], gemma["chat_template"]) == ("gemma3", 262144, False)
    assert "<end_of_turn>" in gemma["eog"]


def test_errors_are_one_line_and_name_the_file(tmp_path, hello):
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}\n{{ m.content }\n")
    proc = harness("render", "--template", str(broken), "--messages", str(hello), check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "broken.jinja:2" in proc.stderr

    bad_messages = tmp_path / "bad.yaml"
    bad_messages.write_text("- role: user\n  content: [unclosed\n")
    proc = harness("render", "--template", "chatml", "--messages", str(bad_messages), check=False)
    assert proc.returncode == 1 and "bad.yaml:2" in proc.stderr and proc.stderr.count("\n") == 1

    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    proc = harness("generate", "--model", str(corrupt), "--template", "chatml", "--messages", str(hello),
                   check=False)
    assert proc.returncode == 1 and "corrupt.gguf" in proc.stderr and "Traceback" not in proc.stderr

    profile = tmp_path / "p.yaml"
    profile.write_text("model: smollm2\nsampling:\n  temperature: hot\n")
    proc = harness("generate", "--profile", str(profile), "--messages", str(hello), check=False)
    assert proc.returncode == 1 and "p.yaml:3" in proc.stderr and "sampling.temperature" in proc.stderr


@pytest.mark.gemma
def test_gemma_base_needs_a_template_then_works_with_raw(hello):
    proc = harness("generate", "--model", "gemma3-270m", "--messages", str(hello), check=False)
    assert proc.returncode == 1 and "--template" in proc.stderr
    data = json.loads(harness("generate", "--model", "gemma3-270m", "--template", "raw", "--messages",
                              str(hello), "--seed", "0", "--max-tokens", "25", "--eos", "ban", "--json").stdout)
    assert data["prompt"] == "<bos>User: Say hello in one short sentence.\n\nAssistant:"
    assert len(data["tokens"]) == 25 and data["tokens"][0]["role"] == "assistant"
    assert data["prompt_roles"]["user"]["tokens"] > 0
