"""Importing SillyTavern presets, text-generation-webui templates and tokenizer_config.json.

Every expected prompt is written out by hand from the source format's own rules, never produced
by the converter:

- SillyTavern (instruct-mode.js): a message is ``[prefix, content + suffix]`` joined by "\\n"
  when ``wrap`` (an empty suffix becomes "\\n" under wrap); the first chat message takes the
  first_* prefix, the last user message last_input_sequence; the prompt line is
  ``last_output_sequence || output_sequence``, and under wrap it is "\\n" + sequence, end-trimmed,
  + "\\n", after one trailing newline of the last message was removed;
- text-generation-webui: ``context`` with ``<|system-message|>`` filled, then the user and bot
  halves of ``turn_template`` with names and stripped contents; the prompt is the bot half up to
  ``<|bot-message|>`` with trailing spaces removed;
- transformers: the Jinja as is, with trim_blocks/lstrip_blocks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jinja2
import jinja2.ext
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.cli.commands import cmd_import
from harness.errors import CommandError, TemplateError
from harness.lab.importers import import_file, write_imported
from harness.paths import user_templates_dir
from harness.prompt.markers import derive_markers
from harness.prompt.templates import load_template

DATA = Path(__file__).parent / "data" / "import"
CHAT = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]

# file -> (the conversation as the tool formats it, what the generation prompt appends)
CASES = {
    "st-chatml.json": (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
        # "...Bye<|im_end|>\n" loses its last "\n", then "\n" + "<|im_start|>assistant" + "\n"
        "<|im_start|>assistant\n"),
    "st-alpaca.json": (
        "Be terse.\n\n### Instruction:\nHi\n\n### Response:\nHello.\n\n### Instruction:\nBye\n\n",
        "### Response:\n"),
    "st-llama3.json": (
        "<|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "st-mistral-v7.json": (
        "[SYSTEM_PROMPT] Be terse.[/SYSTEM_PROMPT][INST] Hi[/INST] Hello.</s>[INST] Bye[/INST]", " "),
    # system_same_as_user: the system message takes the user's sequences; the prompt line is
    # last_output_sequence, without the space output_sequence has
    "st-mistral.json": ("[INST] Be terse.[INST] Hi[/INST] Hello.</s>[INST] Bye", "[/INST]"),
    # story_string_prefix + "\n" + (story string: "Be terse." + "\n") + story_string_suffix
    "st-chatml-story.json": (
        "<|im_start|>system\nBe terse.\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
        "<|im_start|>assistant\n"),
    # separator_sequence is the output suffix; the empty input suffix becomes "\n" under wrap;
    # the old default story string puts "\n" after the system prompt
    "st-legacy-vicuna.json": (
        "Be terse.\nUSER:\nHi\nASSISTANT:\nHello.</s>USER:\nBye\n", "ASSISTANT:\n"),
    "st-first-last.json": ("[sys]Be terse.|[first User]Hi|[Assistant]Hello.|[last User]Bye|", "[next bot]"),
    "tgw-chatml.yaml": (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n",
        "<|im_start|>assistant\n"),
    "tgw-alpaca-turns.yaml": (
        "Be terse.\n\n### Instruction:\nHi\n\n### Response:\nHello.\n\n### Instruction:\nBye\n\n",
        "### Response:\n"),
    # "{{ ... }}\n" keeps its newline: trim_blocks removes newlines after block tags only
    "hf-zephyr/tokenizer_config.json": (
        "<|system|>\nBe terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n<|user|>\nBye</s>\n",
        "<|assistant|>\n"),
    "hf-named/tokenizer_config.json": (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n"),
}
KINDS = {"st": "sillytavern-instruct", "tgw-chatml": "textgen-webui",
         "tgw-alpaca-turns": "textgen-webui-turn-template", "hf": "hf-tokenizer-config"}


def render(imported, messages, gen: bool) -> str:
    return imported.template().render(messages, add_generation_prompt=gen, variables=imported.variables)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("file", CASES)
def test_renders_what_the_tool_would_send(file):
    imported = import_file(DATA / file)
    body, generation = CASES[file]
    assert imported.kind == next(v for k, v in KINDS.items() if file.startswith(k))
    assert render(imported, CHAT, gen=False) == body
    assert render(imported, CHAT, gen=True) == body + generation


@pytest.mark.parametrize("file", CASES)
def test_round_trip_through_a_written_file(file, tmp_path):
    imported = import_file(DATA / file)
    path = write_imported(imported, tmp_path)
    assert path == tmp_path / f"{imported.name}.jinja"
    body, generation = CASES[file]
    for template in (load_template(str(path)), load_template(imported.name, user_dir=tmp_path)):
        assert template.source == imported.source
        assert template.render(CHAT, add_generation_prompt=True, variables=imported.variables) == body + generation


@pytest.mark.parametrize("file", CASES)
def test_turn_markers_can_be_derived(file):
    imported = import_file(DATA / file)
    markers = derive_markers(imported.template(), imported.variables)
    assert markers.generation_prompt == CASES[file][1]
    assert markers.opens["assistant"] and markers.opens["user"]


def test_derived_names_and_hf_variables():
    assert import_file(DATA / "st-llama3.json").name == "Llama-3-Instruct"  # the preset's name
    assert import_file(DATA / "tgw-alpaca-turns.yaml").name == "tgw-alpaca-turns"  # the file's
    zephyr = import_file(DATA / "hf-zephyr/tokenizer_config.json")
    assert zephyr.name == "hf-zephyr"  # the directory's
    assert zephyr.variables == {"bos_token": "<s>", "eos_token": "</s>"}
    named = import_file(DATA / "hf-named/tokenizer_config.json", name="llama")
    assert named.name == "llama"
    assert named.variables == {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    assert [t.name for t in named.extras] == ["llama-tool_use"]


def test_sillytavern_chatml_matches_the_library_chatml():
    imported = import_file(DATA / "st-chatml.json").template()
    library = load_template("chatml")
    for messages in (CHAT, CHAT[1:], CHAT[:2], [*CHAT, {"role": "assistant", "content": "Bye."}]):
        for gen in (False, True):
            assert imported.render(messages, add_generation_prompt=gen) == \
                library.render(messages, add_generation_prompt=gen)


@pytest.mark.parametrize(("messages", "expected"), [
    # the first chat message takes first_output_sequence; the only user message is the last one
    ([{"role": "assistant", "content": "A0"}, {"role": "user", "content": "U1"},
      {"role": "assistant", "content": "A1"}], "[first bot]A0|[last User]U1|[Assistant]A1|[next bot]"),
    # first and last at once: SillyTavern re-formats it as the last, and last_input_sequence wins
    ([{"role": "user", "content": "U1"}], "[last User]U1|[next bot]"),
    # a system message after the start is a narrator message; it is still the first chat message
    ([{"role": "user", "content": "U1"}, {"role": "system", "content": "S"},
      {"role": "user", "content": "U2"}], "[first User]U1|[sys]S|[last User]U2|[next bot]"),
])
def test_sillytavern_first_and_last_sequences(messages, expected):
    imported = import_file(DATA / "st-first-last.json")
    assert render(imported, messages, gen=True) == expected


def test_sillytavern_wrap_without_newline_suffixes(tmp_path):
    preset = {"name": "tight", "input_sequence": "<|im_start|>user", "input_suffix": "<|im_end|>",
              "output_sequence": "<|im_start|>assistant", "output_suffix": "<|im_end|>",
              "system_sequence": "<|im_start|>system", "system_suffix": "<|im_end|>", "wrap": True}
    imported = import_file(write(tmp_path, "tight.json", json.dumps(preset)))
    # nothing to strip at the end, so the prompt line brings its own leading "\n"; the story
    # string (the system prompt) gets a newline because it does not end with one
    assert render(imported, CHAT, gen=True) == (
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>"
        "<|im_start|>assistant\nHello.<|im_end|><|im_start|>user\nBye<|im_end|>"
        "\n<|im_start|>assistant\n")


def test_sillytavern_legacy_default_system_prompt_and_notes():
    imported = import_file(DATA / "st-legacy-vicuna.json")
    assert render(imported, CHAT[1:], gen=True) == (
        "A chat between User and Assistant.\nUSER:\nHi\nASSISTANT:\nHello.</s>USER:\nBye\nASSISTANT:\n")
    notes = "\n".join(imported.notes)
    assert "system_prompt" in notes and "{{char}}, {{user}}" in notes and "names_behavior" in notes


def test_sillytavern_macros_left_as_written_are_reported(tmp_path):
    preset = {"input_sequence": "{{random::a,b}} ", "output_sequence": "{{name}}: ", "macro": True}
    imported = import_file(write(tmp_path, "macros.json", json.dumps(preset)))
    assert render(imported, CHAT[1:2], gen=True) == "{{random::a,b}} HiAssistant: "
    assert any("left as written: {{random::a,b}}" in n for n in imported.notes)
    assert imported.name == "macros"  # no name field: the file's


def test_sillytavern_refuses_other_roles():
    imported = import_file(DATA / "st-chatml.json")
    with pytest.raises(TemplateError, match="not tool"):
        render(imported, [{"role": "tool", "content": "{}"}], gen=True)


def test_textgen_turn_template_strips_contents_and_uses_the_default_system_message():
    imported = import_file(DATA / "tgw-alpaca-turns.yaml")
    messages = [{"role": "user", "content": "  Hi \n"}, {"role": "assistant", "content": "\nHello. "}]
    assert render(imported, messages, gen=True) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nHi\n\n### Response:\nHello.\n\n### Response:\n")


def test_textgen_turn_template_with_escaped_newlines_and_no_system_slot():
    imported = import_file(DATA / "tgw-vicuna-turns.yaml")
    assert render(imported, CHAT[1:], gen=True) == (
        "A chat between a curious user and an artificial intelligence assistant.\n\n"
        "USER: Hi\nASSISTANT: Hello.</s>\nUSER: Bye\nASSISTANT:")
    with pytest.raises(TemplateError, match="system-message"):
        render(imported, CHAT, gen=True)


def test_hf_templates_are_used_as_is():
    config = json.loads((DATA / "hf-named/tokenizer_config.json").read_text())
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)  # as transformers sets it
    imported = import_file(DATA / "hf-named/tokenizer_config.json")
    tools = [{"name": "clock"}]
    for entry, ours in zip(config["chat_template"], (imported, *imported.extras), strict=True):
        reference = env.from_string(entry["template"]).render(
            messages=CHAT, add_generation_prompt=True, bos_token="<|begin_of_text|>", tools=tools)
        assert ours.template().render(CHAT, add_generation_prompt=True,
                                      variables={**ours.variables, "tools": tools}) == reference
    assert "Tools: [{\"name\": \"clock\"}]" in reference


def test_hf_list_without_default_takes_the_first(tmp_path):
    config = {"chat_template": [{"name": "a", "template": "A{{ messages[0]['content'] }}"},
                                {"name": "b b", "template": "B"}]}
    imported = import_file(write(tmp_path, "x.json", json.dumps(config)))
    assert (imported.name, [t.name for t in imported.extras]) == ("x", ["x-b-b"])
    assert render(imported, CHAT[1:2], gen=False) == "AHi"
    assert any("no template is named 'default'" in n for n in imported.notes)


@pytest.mark.parametrize(("name", "text", "message", "line"), [
    ("bad.json", '{\n  "input_sequence": "a",\n  "output_sequence": \n}\n', "not valid JSON", 4),
    ("bad.yaml", "user: a\nturn_template: [unclosed\n", "not valid YAML", 2),
    ("other.json", '{"temperature": 0.7}', "unknown template format", None),
    ("list.yaml", "- a\n- b\n", "unknown template format", None),
    ("half.json", '{"input_sequence": "a"}', "missing field 'output_sequence'", None),
    ("wrap.json", '{"input_sequence": "a",\n "output_sequence": "b",\n "wrap": "yes"}', "'wrap' must be true or false", 3),
    ("seq.json", '{"input_sequence": 3, "output_sequence": "b"}', "'input_sequence' must be a string", 1),
    ("tok.json", '{"tokenizer_class": "X", "eos_token": "</s>"}', "has no chat_template", None),
    ("turns.yaml", "user: a\nbot: b\nturn_template: '<|user|><|user-message|><|bot|>'\n",
     "turn_template needs", 3),
    ("jinja.yaml", "# comment\ninstruction_template: |-\n  {%- for m in messages -%}\n  {{ m['content'] }\n",
     "instruction_template line 2", 4),
    ("hf.json", '{"chat_template": {"default": "x"}}', "must be a string or a list", 1),
])
def test_errors_name_the_file_and_line(tmp_path, name, text, message, line):
    path = write(tmp_path, name, text)
    with pytest.raises(TemplateError, match=message) as info:
        import_file(path)
    assert info.value.where == (f"{path}:{line}" if line else str(path))
    assert info.value.hint


def test_unreadable_file(tmp_path):
    with pytest.raises(TemplateError, match="cannot read") as info:
        import_file(tmp_path / "missing.json")
    assert info.value.where == str(tmp_path / "missing.json")


def test_write_refuses_to_overwrite_without_force(tmp_path):
    imported = import_file(DATA / "st-chatml.json")
    path = write_imported(imported, tmp_path)
    path.write_text("changed", encoding="utf-8")
    with pytest.raises(TemplateError, match="already exists") as info:
        write_imported(imported, tmp_path)
    assert "--force" in (info.value.hint or "")
    assert path.read_text(encoding="utf-8") == "changed"
    assert write_imported(imported, tmp_path, force=True).read_text(encoding="utf-8") == imported.source


def test_write_defaults_to_the_user_templates_directory(harness_home):
    path = write_imported(import_file(DATA / "st-llama3.json"))
    assert path == user_templates_dir() / "Llama-3-Instruct.jinja"
    assert path.is_relative_to(harness_home)


def args(file: Path, name: str | None = None, force: bool = False) -> argparse.Namespace:
    return argparse.Namespace(file=str(file), name=name, force=force)


def test_cmd_import_writes_every_template_and_refuses_a_second_time(capsys):
    assert cmd_import(args(DATA / "hf-named/tokenizer_config.json", name="llama")) == 0
    out = capsys.readouterr().out
    folder = user_templates_dir()
    assert {p.name for p in folder.iterdir()} == {"llama.jinja", "llama-tool_use.jinja"}
    assert "hf-tokenizer-config" in out and "--template llama" in out and "bos_token" in out
    (folder / "llama-tool_use.jinja").unlink()
    with pytest.raises(TemplateError, match="already exists"):  # checked before anything is written
        cmd_import(args(DATA / "hf-named/tokenizer_config.json", name="llama"))
    assert not (folder / "llama-tool_use.jinja").exists()
    assert cmd_import(args(DATA / "hf-named/tokenizer_config.json", name="llama", force=True)) == 0
    assert (folder / "llama-tool_use.jinja").exists()
    rendered = load_template("llama", user_dir=folder).render(CHAT, add_generation_prompt=True,
                                                              variables={"bos_token": "<|begin_of_text|>"})
    assert rendered == "".join(CASES["hf-named/tokenizer_config.json"])


def test_cmd_import_says_when_a_name_shadows_the_library(capsys):
    cmd_import(args(DATA / "st-chatml.json", name="chatml"))
    assert "shadows the library template" in capsys.readouterr().out


def test_cmd_import_rejects_a_bad_name():
    with pytest.raises(CommandError, match="--name"):
        cmd_import(args(DATA / "st-chatml.json", name="../evil"))


def test_import_command_end_to_end(harness_home):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "harness", "import", str(DATA / "st-chatml.json"),
                           "--name", "imported-chatml"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (harness_home / "templates" / "imported-chatml.jinja").is_file()
    rendered = subprocess.run([sys.executable, "-m", "harness", "render", "--template", "imported-chatml",
                               "--messages", str(DATA.parent / "fit-conversation.yaml")],
                              capture_output=True, text=True)
    assert rendered.returncode == 0 and rendered.stdout.startswith("<|im_start|>system\n")
