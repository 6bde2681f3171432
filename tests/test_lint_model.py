"""Lint's rules on the model (``--model``): confusable role-like tokens (L201), declared
end-of-turn ids outside the end-of-generation set (L202), a template that differs from its
tokenizer_config.json (L203). The logic on the fake backend; no false alarm on the real models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.backends.fake import FakeBackend
from harness.lab.lint.model_rules import (
    config_templates,
    confusable_tokens,
    declared_end_ids,
    differs_from_config,
    end_of_turn_findings,
    skeleton,
)
from harness.models.gguf import read_gguf_info
from harness.models.registry import resolve_model

CYRILLIC_A = "\u0430"


@pytest.mark.parametrize("lookalike", [f"<|im_st{CYRILLIC_A}rt|>", "<\uff5cim_start\uff5c>", "<|im_\u200bstart|>"])
def test_a_role_token_and_its_lookalike_are_reported(lookalike):
    tok = FakeBackend(specials=("<s>", "</s>", "<|im_start|>", "<|im_end|>", lookalike))
    found = confusable_tokens(tok)
    assert [f.code for f in found] == ["L201"]
    assert "'<|im_start|>' (id 258, special)" in found[0].message and ascii(lookalike) in found[0].message
    assert skeleton(lookalike) == "<|im_start|>"


def test_distinct_role_tokens_are_not_confusable():
    tok = FakeBackend(specials=("<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|IM_START|>", "[INST]", "[/INST]"))
    assert confusable_tokens(tok) == []


def test_a_declared_end_of_turn_outside_the_eog_set_is_an_error():
    tok = FakeBackend(specials=("<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|eot_id|>"), eog=("</s>",))
    found = end_of_turn_findings(tok, {"eot": 259, "eom": None})
    assert [(f.code, f.severity) for f in found] == [("L202", "error")] and "'<|im_end|>' (id 259)" in found[0].message
    assert end_of_turn_findings(tok, {"eot": 257}) == []  # </s> is end-of-generation
    assert end_of_turn_findings(tok, {"eot": 10**6}) == []  # out of the vocabulary: L014's finding
    assert declared_end_ids({"tokenizer.ggml.eot_token_id": 7, "tokenizer.ggml.eom_token_id": True}) == \
        {"eot": 7, "eom": None}


def test_a_template_differing_from_its_config_is_reported_at_the_line(tmp_path):
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": [{"name": "default", "template": "a\nb\nc"},
                                                    {"name": "tool_use", "template": "t"}]}))
    templates = config_templates(str(config))
    assert templates == {"default": "a\nb\nc", "tool_use": "t"}
    assert differs_from_config("a\nb\nc", templates["default"], str(config), "default") == []
    found = differs_from_config("a\nbX\nc", templates["default"], str(config), "default")
    assert [(f.code, f.line, f.column) for f in found] == [("L203", 2, 2)]


@pytest.mark.model
def test_smollm2_lints_clean_and_matches_its_own_config(tmp_path):
    embedded = read_gguf_info(resolve_model("smollm2")[1]).chat_template
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": embedded, "bos_token": "<|im_start|>"}))
    run = [sys.executable, "-m", "harness", "lint", "--model", "smollm2", "--against-config", str(config), "--json"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["summary"]["error"] == report["summary"]["warning"] == 0, proc.stdout
    assert [t["template"] for t in report["templates"]] == ["smollm2:tokenizer", "smollm2:gguf"]
    lines = embedded.split("\n")
    lines[2] = lines[2] + " "
    config.write_text(json.dumps({"chat_template": "\n".join(lines)}))
    proc = subprocess.run(run, capture_output=True, text=True, timeout=300)
    found = [f for t in json.loads(proc.stdout)["templates"] for f in t["findings"]]
    assert proc.returncode == 0 and [(f["code"], f["line"]) for f in found] == [("L203", 3)]


@pytest.mark.gemma
def test_the_real_vocabularies_raise_no_false_alarm(smollm2_backend, gemma_backend):
    """SmolLM2 (49k tokens, ChatML specials) and Gemma-3 (262k, <start_of_turn>...) hold no
    confusable role tokens and declare no end-of-turn outside their EOG sets."""
    for backend in (smollm2_backend, gemma_backend):
        declared = declared_end_ids(read_gguf_info(backend.info.path).scalars)
        assert confusable_tokens(backend) == [] and end_of_turn_findings(backend, declared) == []
