"""Chat-template formats people already have, imported as harness Jinja templates.

Detected from the file's content: a SillyTavern instruct preset (JSON) becomes a template that
renders what SillyTavern sends for a plain conversation; a text-generation-webui instruction
template (YAML) is used as is (``instruction_template``) or converted (the older
``turn_template`` form); a Hugging Face ``tokenizer_config.json`` gives its ``chat_template``
(one template per name of a named list) and ``bos_token``/``eos_token`` as variables. What a
format means that a template cannot carry is listed in ``notes``. Every imported template starts
with a comment saying where it came from; the comment renders nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.atomic import write_text
from harness.errors import CommandError, StorageError, TemplateError
from harness.paths import user_templates_dir
from harness.prompt.templates import ChatTemplate, list_library
from harness.untrusted import check_text
from harness.yamlio import error_location, load_yaml

SILLYTAVERN = "sillytavern-instruct"
TEXTGEN = "textgen-webui"
TEXTGEN_TURNS = "textgen-webui-turn-template"
HF_CONFIG = "hf-tokenizer-config"
USER_NAME, CHAR_NAME, SYSTEM_NAME = "User", "Assistant", "System"  # what SillyTavern macros become

_FORMATS = ("expected a SillyTavern instruct preset (JSON), a text-generation-webui instruction "
            "template (YAML) or a Hugging Face tokenizer_config.json")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_EXISTS_HINT = "pass --force to overwrite it, or --name to choose another name"


@dataclasses.dataclass(frozen=True)
class ImportedTemplate:
    """A converted template: file name (without ``.jinja``), Jinja source, source format, notes.

    ``variables`` are template variables the file defines (``bos_token``...); ``extras`` are
    further templates from the same file (the other entries of a named HF list).
    """

    name: str
    source: str
    kind: str
    notes: tuple[str, ...] = ()
    variables: Mapping[str, str] = dataclasses.field(default_factory=dict)
    extras: tuple[ImportedTemplate, ...] = ()

    def template(self) -> ChatTemplate:
        return ChatTemplate(self.name, self.source, f"import:{self.kind}")


@dataclasses.dataclass(frozen=True)
class _Document:
    path: Path
    text: str
    data: Any

    def where(self, key: str) -> str:
        """``path:line`` of the first ``key:`` in the file, or the path alone."""
        found = re.search(rf"\"{re.escape(key)}\"\s*:|^\s*{re.escape(key)}\s*:", self.text, re.M)
        return f"{self.path}:{self.text.count(chr(10), 0, found.start()) + 1}" if found else str(self.path)

    def text_field(self, key: str) -> str:
        """The string at ``key``; "" when absent or null."""
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise TemplateError(f"field '{key}' must be a string, not {type(value).__name__}",
                                where=self.where(key), hint="fix the field")
        return value or ""

    def bool_field(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise TemplateError(f"field '{key}' must be true or false", where=self.where(key),
                                hint="fix the field")
        return value


def import_file(path: str | Path, *, name: str | None = None) -> ImportedTemplate:
    """Detect the format of ``path`` and convert it; ``name`` overrides the derived name."""
    doc = _read(Path(path))
    if isinstance(doc.data, dict) and isinstance(doc.data.get("instruct"), dict):
        doc = _Document(doc.path, doc.text, doc.data["instruct"])  # a SillyTavern settings export
    data = doc.data if isinstance(doc.data, dict) else {}
    if "chat_template" in data:
        return _distinct(_from_hf(doc, name or _hf_name(doc.path)), doc)
    if "instruction_template" in data:
        return _from_textgen(doc, name or _slug(doc.path.stem))
    if "turn_template" in data:
        return _from_turn_template(doc, name or _slug(doc.path.stem))
    if "input_sequence" in data or "output_sequence" in data:
        return _from_sillytavern(doc, name or _slug(doc.text_field("name") or doc.path.stem))
    if "tokenizer_class" in data or "added_tokens_decoder" in data:
        raise TemplateError("tokenizer_config.json has no chat_template", where=str(doc.path),
                            hint="newer models ship chat_template.jinja beside it: pass that to --template")
    raise TemplateError("unknown template format", where=str(doc.path), hint=_FORMATS)


def _distinct(imported: ImportedTemplate, doc: _Document) -> ImportedTemplate:
    """Refuse, before anything is written, named templates that map to one file name."""
    seen: set[str] = set()
    for item in (imported, *imported.extras):
        if item.name in seen:
            raise TemplateError(f"two named templates map to the same file name '{item.name}.jinja'",
                                where=str(doc.path), hint="rename one of the chat_template entries")
        seen.add(item.name)
    return imported


def write_imported(imported: ImportedTemplate, directory: Path | None = None, force: bool = False) -> Path:
    """Write ``NAME.jinja`` into ``directory`` (the user templates directory by default)."""
    target = (directory or user_templates_dir()) / f"{imported.name}.jinja"
    if target.exists() and not force:
        raise TemplateError("template already exists", where=str(target), hint=_EXISTS_HINT)
    try:
        write_text(target, imported.source)
    except StorageError as exc:
        raise TemplateError(f"cannot write template: {exc.message}", where=str(target)) from None
    return target


@dataclasses.dataclass(frozen=True)
class Written:
    path: Path
    kind: str
    notes: tuple[str, ...]


def import_templates(file: str | Path, *, name: str | None = None, force: bool = False) -> tuple[str, list[Written]]:
    """Convert `file` into user templates: (the main template's name, what was written). Nothing
    is written when any target exists and `force` is false."""
    if name is not None and not _NAME_RE.fullmatch(name):
        raise CommandError(f"--name '{name}': use letters, digits, '.', '_', '+' and '-'")
    imported = import_file(str(file), name=name)
    directory, everything = user_templates_dir(), [imported, *imported.extras]
    taken = [p for t in everything if (p := directory / f"{t.name}.jinja").exists()]
    if taken and not force:  # refuse before writing any of them
        raise TemplateError("template already exists", where=str(taken[0]), hint=_EXISTS_HINT)
    written = []
    for item in everything:
        shadows = ("shadows the library template of the same name",) if item.name in list_library() else ()
        written.append(Written(write_imported(item, directory, force=force), item.kind, (*item.notes, *shadows)))
    return imported.name, written


def _read(path: Path) -> _Document:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read file: {exc.__class__.__name__}", where=str(path),
                            hint="give a preset, an instruction template or a tokenizer_config.json") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml") or (suffix != ".json" and not text.lstrip().startswith("{")):
        try:
            data = load_yaml(text)[0]
            check_text(data, error=TemplateError, where=str(path), what="the file")
            return _Document(path, text, data)
        except yaml.YAMLError as exc:
            at, problem = error_location(exc, str(path))
            raise TemplateError(f"not valid YAML: {problem}", where=at, hint="fix the YAML") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"not valid JSON: {exc.msg} (column {exc.colno})",
                            where=f"{path}:{exc.lineno}", hint="fix the JSON") from None
    except RecursionError:
        raise TemplateError("nested too deeply to be a template file", where=str(path)) from None
    check_text(data, error=TemplateError, where=str(path), what="the file")
    return _Document(path, text, data)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "imported"


def _hf_name(path: Path) -> str:
    generic = path.stem in ("tokenizer_config", "chat_template")
    return _slug(path.resolve().parent.name if generic else path.stem)


def _lit(text: str) -> str:
    """A Jinja string literal for ``text`` (JSON's escapes are Jinja's escapes)."""
    return json.dumps(text, ensure_ascii=False)


def _header(kind: str, doc: _Document, extra: str = "") -> str:
    return "{# " + f"Imported by harness from {doc.path.name} ({kind}).{extra}".replace("#}", "# }") + " #}\n"


def _sets(values: Mapping[str, Any]) -> str:
    return "".join(f"{{%- set {key} = {_lit(v) if isinstance(v, str) else str(v).lower()} -%}}\n"
                   for key, v in values.items())


def _check_renders(source: str, label: str, doc: _Document, first_line: int | None) -> None:
    """Fail now, naming the file line when known, if ``source`` cannot render a one-message chat."""
    try:
        ChatTemplate(label, source, "import").render([{"role": "user", "content": "hi"}],
                                                     add_generation_prompt=True)
    except TemplateError as exc:
        line = (exc.where or "").rpartition(":")[2]
        where = f"{doc.path}:{first_line + int(line)}" if first_line and line.isdigit() else str(doc.path)
        label = f"{label} line {line}" if line.isdigit() else label
        raise TemplateError(f"{label}: {exc.message}", where=where, hint=exc.hint or "fix the template") from None


# -- Hugging Face ----------------------------------------------------------------------------

def _from_hf(doc: _Document, name: str) -> ImportedTemplate:
    raw = {key: doc.data.get(key) for key in ("bos_token", "eos_token")}  # a string or {content: ...}
    variables = {k: v for k, t in raw.items() if isinstance(v := t.get("content") if isinstance(t, dict) else t, str)}
    shown = "".join(f" {k}={v!r}" for k, v in variables.items())
    notes = [f"variables in the file:{shown} (with --model harness uses the model's; else --var)"] if shown else []
    entries = doc.data["chat_template"]
    entries = [{"name": "default", "template": entries}] if isinstance(entries, str) else entries
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("template"), str)
            for e in entries):
        raise TemplateError("chat_template must be a string or a list of {name, template}",
                            where=doc.where("chat_template"), hint="fix the file")
    if all(e["name"] != "default" for e in entries):
        notes.append(f"no template is named 'default': '{entries[0]['name']}' is the main one")
    entries = sorted(entries, key=lambda e: e["name"] != "default")  # stable: the main one first
    built = []
    for i, entry in enumerate(entries):
        _check_renders(entry["template"], f"chat_template '{entry['name']}'", doc, None)
        header = _header(HF_CONFIG, doc, f" Template '{entry['name']}'.{' Variables:' + shown if shown else ''}")
        built.append(ImportedTemplate(f"{name}-{_slug(entry['name'])}" if i else name,
                                      header + entry["template"], HF_CONFIG, tuple(notes), variables))
    return dataclasses.replace(built[0], extras=tuple(built[1:]))


# -- text-generation-webui -------------------------------------------------------------------

def _from_textgen(doc: _Document, name: str) -> ImportedTemplate:
    source = doc.text_field("instruction_template")
    block = re.search(r"^instruction_template:[ \t]*\|[-+]?[ \t]*$", doc.text, re.M)
    _check_renders(source, "instruction_template", doc,
                   doc.text.count("\n", 0, block.start()) + 1 if block else None)
    return ImportedTemplate(name, _header(TEXTGEN, doc) + source, TEXTGEN, ("instruction_template used as is",))


_TURNS_BODY = r"""
{%- set has_system = messages and messages[0]['role'] == 'system' -%}
{%- if has_system and '<|system-message|>' not in context -%}
{{- raise_exception('this template has no <|system-message|> in its context: text-generation-webui had no place for a system message') -}}
{%- endif -%}
{{- context | replace('<|system-message|>', messages[0]['content'] if has_system and messages[0]['content'] | trim else default_system) -}}
{%- set ns = namespace(round=0) -%}
{%- for message in (messages[1:] if has_system else messages) -%}
{%- if message['role'] == 'user' -%}
{{- user_turn | replace('<|user-message|>', message['content'] | trim) | replace('<|round|>', ns.round | string) -}}
{%- set ns.round = ns.round + 1 -%}
{%- elif message['role'] == 'assistant' -%}
{{- bot_turn | replace('<|bot-message|>', message['content'] | trim) -}}
{%- else -%}
{{- raise_exception('text-generation-webui turn templates have user and assistant turns after one system message, not ' + message['role']) -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- generation_prompt -}}{%- endif -%}
"""


def _from_turn_template(doc: _Document, name: str) -> ImportedTemplate:
    """The pre-Jinja form: ``turn_template`` with ``<|user|>`` ``<|user-message|>`` ``<|bot|>``
    ``<|bot-message|>`` (``\\n`` written out is a newline), ``context`` with ``<|system-message|>``
    and ``system_message``, its default. Message contents are stripped, as text-generation-webui did."""
    turn = doc.text_field("turn_template").replace("\\n", "\n")
    user_part, _, bot_part = turn.partition("<|bot|>")
    if "<|user-message|>" not in user_part or "<|bot-message|>" not in bot_part:
        raise TemplateError("turn_template needs <|user-message|>, then <|bot|>, then <|bot-message|>",
                            where=doc.where("turn_template"),
                            hint="it reads like <|user|>\\n<|user-message|>\\n<|bot|>\\n<|bot-message|>\\n")
    user, bot = doc.text_field("user").strip(), doc.text_field("bot").strip()
    bot_turn = bot + bot_part.partition("<|bot|>")[0].replace("<|user|>", user)
    values = {"context": doc.text_field("context"), "default_system": doc.text_field("system_message"),
              "user_turn": user_part.replace("<|user|>", user), "bot_turn": bot_turn,
              "generation_prompt": bot_turn.partition("<|bot-message|>")[0].rstrip(" ")}
    notes = ("converted from turn_template: contents are stripped, as text-generation-webui did",)
    if "<|system-message|>" not in values["context"]:
        notes += ("the context has no <|system-message|>: a system message is refused",)
    return ImportedTemplate(name, _header(TEXTGEN_TURNS, doc) + _sets(values) + _TURNS_BODY.lstrip("\n"),
                            TEXTGEN_TURNS, notes)


# -- SillyTavern -----------------------------------------------------------------------------

_ST_BODY = r"""
{%- set ns = namespace(first=true, tail='') -%}
{%- set last_user = messages | selectattr('role', 'equalto', 'user') | list | last -%}
{%- set no_system = not (messages and messages[0]['role'] == 'system') -%}
{%- for message in ([{'role': 'system', 'content': default_system}] if default_system and no_system else []) + messages -%}
{%- set role = message['role'] -%}
{%- if loop.first and role == 'system' -%}
{%- set text = story_open + message['content'] + story_close -%}
{%- elif role == 'system' -%}
{%- set text = system_open + message['content'] + system_close -%}
{%- elif role == 'user' -%}
{%- set opener = last_user_open if message is sameas last_user else (first_user_open if ns.first else user_open) -%}
{%- set text = opener + message['content'] + user_close -%}
{%- elif role == 'assistant' -%}
{%- set text = (first_assistant_open if ns.first else assistant_open) + message['content'] + assistant_close -%}
{%- else -%}
{{- raise_exception('SillyTavern presets format system, user and assistant messages, not ' + role) -}}
{%- endif -%}
{%- set ns.first = loop.first and role == 'system' -%}
{{- text -}}
{%- set ns.tail = text -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{%- if wrap and ns.tail and not ns.tail.endswith('\n') -%}{{- '\n' -}}{%- endif -%}
{{- generation_prompt -}}
{%- endif -%}
"""


def _st_macros(macro: bool, used: set[str]) -> Callable[[str, str], str]:
    """``{{user}}``, ``{{char}}`` and ``{{name}}`` filled in as SillyTavern does (when ``macro``)."""
    def fill(text: str, speaker: str) -> str:
        for macro_name, value in (("user", USER_NAME), ("char", CHAR_NAME), ("name", speaker)):
            if macro:
                text, count = re.subn(r"\{\{" + macro_name + r"\}\}", value, text, flags=re.I)
                used.update({"{{" + macro_name + "}}"} if count else set())
        return text
    return fill


def _st_values(doc: _Document, fill: Callable[[str, str], str]) -> dict[str, Any]:
    """Each turn's open (sequence + the wrap newline) and close (suffix, else the wrap newline)."""
    wrap = doc.bool_field("wrap")
    sep = "\n" if wrap else ""

    def seq(key: str, speaker: str, fallback: str) -> str:
        text = fill(doc.text_field(key) or doc.text_field(fallback), speaker)
        return text + sep if text else ""

    def close(key: str, speaker: str) -> str:
        return fill(doc.text_field(key), speaker) or sep

    system = "input" if doc.bool_field("system_same_as_user") else "system"
    generation = fill(doc.text_field("last_output_sequence") or doc.text_field("output_sequence"), CHAR_NAME)
    if wrap:  # SillyTavern trims the prompt line's end, then adds the wrap newline
        generation = generation.rstrip() + "\n" if generation.rstrip() else ""
    return {"wrap": wrap, "user_open": seq("input_sequence", USER_NAME, ""),
            "first_user_open": seq("first_input_sequence", USER_NAME, "input_sequence"),
            "last_user_open": seq("last_input_sequence", USER_NAME, "input_sequence"),
            "user_close": close("input_suffix", USER_NAME),
            "assistant_open": seq("output_sequence", CHAR_NAME, ""),
            "first_assistant_open": seq("first_output_sequence", CHAR_NAME, "output_sequence"),
            "assistant_close": close("output_suffix", CHAR_NAME),
            "system_open": seq(f"{system}_sequence", SYSTEM_NAME, ""),
            "system_close": close(f"{system}_suffix", SYSTEM_NAME), "generation_prompt": generation}


def _st_story(doc: _Document, values: dict[str, Any], fill: Callable[[str, str], str]) -> str:
    """Set ``story_open``/``story_close``, the wrapping of the system prompt; returns a note."""
    sep = "\n" if values["wrap"] else ""
    if "story_string_prefix" in doc.data or "story_string_suffix" in doc.data:
        prefix = fill(doc.text_field("story_string_prefix"), SYSTEM_NAME)
        values["story_open"] = prefix + sep if prefix else ""
        values["story_close"] = "\n" + fill(doc.text_field("story_string_suffix"), SYSTEM_NAME)
        return ("system prompt: story_string_prefix + SYSTEM + newline (the story string of a "
                "context template holding only the system prompt) + story_string_suffix")
    if "system_sequence" in doc.data:
        values["story_open"], values["story_close"] = values["system_open"], values["system_close"]
        if values["wrap"] and not values["story_close"].endswith("\n"):
            values["story_close"] += "\n"
        return ("system prompt: wrapped like a system message (system_sequence/system_suffix); "
                "SillyTavern wraps it by the context template, which may differ")
    prefix = fill(doc.text_field("system_sequence_prefix"), SYSTEM_NAME)
    suffix = fill(doc.text_field("system_sequence_suffix"), SYSTEM_NAME)
    values["story_open"] = prefix + sep if prefix else ""
    values["story_close"] = (sep + suffix if suffix else "") + "\n"
    return "system prompt: system_sequence_prefix/suffix, then a newline (the old default story string)"


def _st_notes(doc: _Document, used: set[str], leftover: set[str]) -> list[str]:
    notes = []
    if doc.text_field("system_prompt"):
        notes.append("system_prompt is the system message when the conversation has none")
    if used:
        notes.append(f"macros filled in: {', '.join(sorted(used))} (user = {USER_NAME}, char = "
                     f"{CHAR_NAME}, name = the speaker)")
    if leftover:
        notes.append(f"macros left as written: {', '.join(sorted(leftover))}")
    if doc.text_field("stop_sequence"):
        notes.append(f"stop_sequence {doc.text_field('stop_sequence')!r}: pass it with --stop if wanted")
    return [*notes, "not carried over: character names (names_behavior), example dialogues, "
            "user_alignment_message, last_system_sequence, activation_regex; continue mode opens the "
            "last reply with output_sequence, not last_output_sequence",
            "no BOS is written: like SillyTavern, harness leaves it to the backend"]


def _from_sillytavern(doc: _Document, name: str) -> ImportedTemplate:
    """What SillyTavern sends for a plain chat. A leading system message is the story string
    (``story_open``/``story_close``); later ones are narrator messages. The first chat message
    takes a first_* sequence and the last user message last_input_sequence. With ``wrap`` the
    prompt line replaces the last newline. Old presets: separator_sequence is output_suffix."""
    if "separator_sequence" in doc.data:
        doc = _Document(doc.path, doc.text, {**doc.data, "output_suffix": doc.data["separator_sequence"]})
    for key in ("input_sequence", "output_sequence"):
        if key not in doc.data:
            raise TemplateError(f"missing field '{key}'", where=str(doc.path),
                                hint="a SillyTavern instruct preset needs input_sequence and output_sequence")
    used: set[str] = set()
    fill = _st_macros(doc.bool_field("macro"), used)
    values = _st_values(doc, fill)
    story_note = _st_story(doc, values, fill)
    values["default_system"] = _st_macros(True, used)(doc.text_field("system_prompt"), SYSTEM_NAME)
    leftover = {m for v in values.values() if isinstance(v, str) for m in re.findall(r"\{\{[^{}]*\}\}", v)}
    source = (_header(SILLYTAVERN, doc, f" Preset '{doc.text_field('name') or doc.path.stem}'.")
              + _sets(values) + _ST_BODY.lstrip("\n"))
    return ImportedTemplate(name, source, SILLYTAVERN, (story_note, *_st_notes(doc, used, leftover)))
