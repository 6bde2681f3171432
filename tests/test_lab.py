"""Template lab: lint finds each defect, is clean on the library; diff; fit ranks ChatML first."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.backends.fake import FakeBackend
from harness.lab.diffing import diff_sequences
from harness.lab.lint import lint
from harness.prompt.templates import ChatTemplate, list_library, load_template

CHATML_LOOP = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
GEN = "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"

BROKEN = {
    "L001": "{% if messages|length > 2 %}{{ raise_exception('too long') }}{% endif %}" + CHATML_LOOP + GEN,
    "L003": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|eot|>\n{% endfor %}" + GEN,
    # Llama-2 style: BOS before every turn, plus one at the start
    "L004": "{{ bos_token }}{% for m in messages %}{{ bos_token }}<|im_start|>{{ m.role }}\n{{ m.content }}"
            "<|im_end|>\n{% endfor %}" + GEN,
    "L011": "{{ bos_token }}" + CHATML_LOOP + GEN,
    "L005": "{% for m in messages %}<|turn_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|turn_start|>assistant\n{% endif %}",
    # history rewritten once a message is no longer the last (as reasoning-stripping templates do)
    "L006": "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if loop.last %}{{ m.content }}"
            "{% else %}{{ m.content[:2] }}{% endif %}<|im_end|>\n{% endfor %}" + GEN,
    "L007": "{% for m in messages if m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
            "{% endfor %}" + GEN,
    "L008": CHATML_LOOP,
    "L009": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
            "{% if loop.index > 2 %} {% endif %}{% endfor %}" + GEN,
    "L010": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content[:3] }}<|im_end|>\n{% endfor %}" + GEN,
}


def fake_tokenizer() -> FakeBackend:
    return FakeBackend(add_bos=True)


@pytest.mark.parametrize("code", sorted(BROKEN))
def test_lint_finds_each_defect(code):
    tokenizer = fake_tokenizer()
    variables = {"bos_token": "<s>", "eos_token": "</s>"}
    findings, _ = lint(ChatTemplate(f"broken-{code}.jinja", BROKEN[code], "test"), variables, tokenizer)
    codes = {f.code for f in findings}
    assert code in codes, findings
    assert all("\n" not in f.message for f in findings)


def test_lint_names_conversation_and_message_that_raise():
    findings, _ = lint(ChatTemplate("b", BROKEN["L001"], "test"))
    raising = [f for f in findings if f.code == "L001"]
    assert raising and "raises at message 2" in raising[0].message and raising[0].probe == "system first"


@pytest.mark.parametrize("name", list_library())
def test_library_templates_lint_clean(name):
    findings, markers = lint(load_template(name), {"bos_token": "<s>", "eos_token": "</s>"})
    assert markers is not None
    assert [f for f in findings if f.severity != "info"] == []


@pytest.mark.model
def test_lint_cli_exit_codes_and_json():
    ok = subprocess.run([sys.executable, "-m", "harness", "lint", "chatml", "--model", "smollm2", "--json"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["findings"] == []
    bad = subprocess.run([sys.executable, "-m", "harness", "lint", "llama3", "--model", "smollm2"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "L003" in bad.stdout


def test_diff_finds_the_changed_marker():
    a = load_template("chatml").render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    b = load_template("phi3").render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    changes = diff_sequences(a, b)
    assert changes
    rebuilt = list(a)
    for c in reversed(changes):
        rebuilt[c.a_start:c.a_end] = list(c.b_text)
    assert "".join(rebuilt) == b


@pytest.mark.model
def test_fit_ranks_chatml_family_first_for_smollm2(smollm2):
    from harness.lab.fit import rank_templates
    from harness.readers import read_messages
    from tests.support.cli import REPO

    conversation = read_messages(str(REPO / "tests" / "data" / "fit-conversation.yaml"))
    candidates = [load_template(n) for n in list_library()]
    candidates.append(smollm2.template)
    rows = rank_templates(smollm2, conversation, candidates)
    assert {rows[0].template, rows[1].template} == {"chatml", "smollm2:gguf"}
    assert rows[0].score < rows[2].score - 1.0  # a clear margin over the next family
    assert smollm2.template.origin == "gguf"  # fit restores the workbench's template


@pytest.mark.model
@pytest.mark.parametrize("name", ["fit-conversation.yaml", "fit/recipe.yaml", "fit/travel.yaml"])
def test_fit_ranks_the_models_own_format_first_on_ordinary_conversations(smollm2, name):
    """Total bits of the whole rendered conversation: ChatML (SmolLM2's format) first on each,
    by at least 5 bits (travel.yaml's margin over raw is the smallest: 8 bits). Its embedded template writes a default system prompt when there is
    none, which costs its bits (recipe.yaml has no system message)."""
    from harness.lab.fit import rank_templates
    from harness.readers import read_messages
    from tests.support.cli import REPO

    conversation = read_messages(str(REPO / "tests" / "data" / name))
    candidates = [load_template(n) for n in list_library()] + [smollm2.template]
    rows = rank_templates(smollm2, conversation, candidates)
    assert rows[0].template in ("chatml", "smollm2:gguf")
    others = [r for r in rows if r.template not in ("chatml", "smollm2:gguf")]
    assert rows[0].score < others[0].score - 5.0
    assert rows[0].content_bits_per_byte is not None and rows[0].end_of_turn_bits is not None
