"""Settings commands: /set (sampling keys, template variables, display switches), /eos, /bias,
/template, /model, /system, /profile, /shade — each parsed and validated before anything changes.

A bare command shows its state; changing it takes an argument (``/system --clear``,
``/set stop none``, ``/bias off``). Values are printed as they are typed back to /set.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.registry import CommandTable
from harness.chat.slash import quote, split_words, take_words
from harness.errors import CommandError
from harness.generation.settings import EOS_POLICIES, SETTINGS
from harness.generation.settings import parse as parse_setting

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


SAMPLING_KEYS = tuple(s.name for s in SETTINGS if s.name != "logit_bias")  # /bias sets those
ENGINE_KEYS = ("literal_content", "context_overflow", "n_ctx", "threads")  # n_ctx, threads reload
UI_KEYS = ("shade", "multiline", "vi")
SETTING_KEYS = (*SAMPLING_KEYS, *ENGINE_KEYS, "var.NAME", *UI_KEYS)
ENGINE_HELP = {
    "literal_content": "on: message content is tokenized as plain text (control-token strings stay text)",
    "context_overflow": "error | truncate-oldest: what a prompt longer than n_ctx does",
    "n_ctx": "context length in tokens (reloads the model)",
    "threads": "CPU threads (reloads the model)",
}
UI_HELP = {"shade": "on|off: shade streamed tokens by entropy",
           "multiline": "on|off: Enter inserts a newline, Alt-Enter sends",
           "vi": "on|off: Vi editing keys"}


def written(key: str, value: object) -> str:
    """A setting's value as a user would type it back to /set."""
    if key == "seed" and value is None:
        return "random"
    if key == "stop":
        return json.dumps(list(value)) if value else "none"  # type: ignore[call-overload]
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "logit_bias":
        return " ".join(f"{json.dumps(k)}={v:g}" for k, v in value.items()) or "none"  # type: ignore[attr-defined]
    if value is None:
        return "-"
    return str(value)


def apply_setting(session: Session, key: str, value: str) -> str:
    key = key.replace("-", "_")
    if key.startswith("var."):
        name = key[4:]
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        overrides = {**session.bench.overrides, name: parsed}
        from harness.prompt.markers import derive_markers

        markers = derive_markers(session.bench.template, {**session.bench.variables, name: parsed})
        session.bench.overrides, session.bench.markers = overrides, markers
        return f"template variable {name} = {parsed!r}"
    if key in ENGINE_KEYS:
        return set_engine(session, key, value)
    if key not in SAMPLING_KEYS:
        known = ", ".join([*SAMPLING_KEYS, *ENGINE_KEYS, "var.NAME", *UI_KEYS])
        raise CommandError(f"unknown setting '{key}'", hint=f"known: {known}")
    parsed = parse_setting(key, value)
    session.params = session.params.updated(**{key: parsed})
    return f"{key} = {written(key, parsed)}"


def set_engine(session: Session, key: str, value: str) -> str:
    """literal_content, context_overflow; n_ctx and threads reopen the model with the new value."""
    from harness.generation.workbench import OVERFLOW_POLICIES

    if key == "literal_content":
        if value.lower() not in ON_OFF:
            raise CommandError("usage: /set literal_content on|off")
        if ON_OFF[value.lower()] and getattr(session.bench.engine, "url", None):
            raise CommandError("a server tokenizes the whole prompt: literal content needs a local model")
        session.bench.literal_content = ON_OFF[value.lower()]
        return f"literal_content = {written(key, session.bench.literal_content)}"
    if key == "context_overflow":
        if value not in OVERFLOW_POLICIES:
            raise CommandError(f"usage: /set context_overflow {'|'.join(OVERFLOW_POLICIES)}")
        session.context_overflow = value
        return f"context_overflow = {value}"
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"usage: /set {key} N (a whole number)") from None
    if number <= 0:
        raise CommandError(f"{key} must be > 0")
    reload(session, **{key: number})
    return f"{key} = {number} (model reloaded; conversation kept)"


def reload(session: Session, **changes: object) -> None:
    """Reopen the model with `changes` (n_ctx, threads); the old one stays if that fails."""
    if session.loader is None:
        raise CommandError("this session cannot reload its model")
    literal = session.bench.literal_content
    bench = session.loader(session.model_spec, session.template_spec, **{**session.engine_options, **changes})
    bench.literal_content = literal
    bench.overrides = dict(session.bench.overrides)
    old, session.bench = session.bench, bench
    session.engine_options.update(changes)
    old.close()


def current(session: Session) -> dict[str, object]:
    """Every /set key and its value."""
    values: dict[str, object] = {key: getattr(session.params, key) for key in SAMPLING_KEYS}
    values.update({"literal_content": session.bench.literal_content,
                   "context_overflow": session.context_overflow, "n_ctx": session.bench.info.n_ctx,
                   "threads": session.engine_options.get("threads") or "auto"})
    values.update({f"var.{k}": json.dumps(v) for k, v in session.bench.overrides.items()})
    values.update(session.ui)
    return values


def describe_settings(session: Session) -> str:
    info = session.bench.info
    rows = [("model", f"{info.name}  ({info.path})"),
            ("template", f"{session.bench.template.name}  ({session.bench.template.origin})"),
            ("profile", session.profile_name or "-"),
            ("bias", written("logit_bias", session.params.logit_bias))]
    rows += [(key, written(key, value)) for key, value in current(session).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:{width}}  {v}" for k, v in rows) + "\n(/set KEY VALUE changes one; /help set)"


def settings_help() -> str:
    """The /set keys and what each takes (for /help set)."""
    from harness.generation.settings import BY_NAME

    rows = [(key, f"{BY_NAME[key].help} ({BY_NAME[key].rule})") for key in SAMPLING_KEYS]
    rows += list(ENGINE_HELP.items()) + [("var.NAME", "a template variable (JSON or text)")]
    rows += list(UI_HELP.items())
    width = max(len(k) for k, _ in rows)
    return "keys:\n" + "\n".join(f"  {k:{width}}  {v}" for k, v in rows)


# -- commands ----------------------------------------------------------------------------------
ON_OFF = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


@COMMANDS.command("set")
def cmd_set(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/set: all; /set KEY: that one; /set KEY VALUE: change it."""
    words, value = take_words(arg, 1)
    if not words:
        emit(Notice(describe_settings(session)))
        return
    key = words[0].replace("-", "_")
    if not value:
        values = current(session)
        if key not in values:
            apply_setting(session, key, "")  # names the unknown key
        emit(Notice(f"{key} = {written(key, values[key])}"))
        return
    if key in session.ui:
        emit(Notice(set_ui(session, key, value)))
        return
    emit(Notice(apply_setting(session, key, value)))


def set_ui(session: Session, key: str, value: str) -> str:
    """Display and input settings (the REPL reads them): shade, multiline, vi."""
    if value.lower() not in ON_OFF:
        raise CommandError(f"usage: /set {key} on|off")
    session.ui[key] = ON_OFF[value.lower()]
    return f"{key} = {'on' if session.ui[key] else 'off'}"


@COMMANDS.command("shade")
def cmd_shade(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if not words:
        emit(Notice(f"shade = {written('shade', session.ui['shade'])}"))
        return
    emit(Notice(set_ui(session, "shade", words[0])))


@COMMANDS.command("eos")
def cmd_eos(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if not words:
        emit(Notice(f"EOS policy: {session.params.eos}"))
        return
    if len(words) != 1 or words[0] not in EOS_POLICIES:
        raise CommandError(f"usage: /eos {'|'.join(EOS_POLICIES)}")
    session.params = session.params.updated(eos=words[0])
    emit(Notice(f"EOS policy: {words[0]}"))


@COMMANDS.command("bias")
def cmd_bias(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/bias lists; /bias TOKEN VALUE adds; /bias TOKEN off removes one; /bias off removes all."""
    words = split_words(arg)
    bias = dict(session.params.logit_bias)
    if words == ["off"]:
        bias = {}
    elif len(words) == 2 and words[1] in ("off", "clear", "none"):
        if words[0] not in bias:
            raise CommandError(f"no bias on {words[0]!r}", hint="/bias lists them")
        bias.pop(words[0])
    elif len(words) == 2:
        try:
            number = float(words[1])
        except ValueError:
            raise CommandError(f"bias value '{words[1]}' is not a number (or off)") from None
        from harness.generation.turn import resolve_bias

        resolve_bias(session.bench.engine, {words[0]: number}, session.bench.info.n_vocab)  # reject a bad token now
        bias[words[0]] = number
    elif words:
        raise CommandError("usage: /bias [TOKEN VALUE|TOKEN off|off]", hint='quote a token with spaces: /bias "hello world" 5')
    if words:
        session.params = session.params.updated(logit_bias=bias)
    emit(Notice(f"logit biases: {written('logit_bias', session.params.logit_bias)}"))


@COMMANDS.command("template")
def cmd_template(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Bare: show the template. Otherwise lint the new one first: refuse one that fails to render
    (L001) or whose roles cannot be told (L012); warn when its end of turn never stops the model."""
    from harness.generation.workbench import choose_template
    from harness.lab.lint import lint
    from harness.paths import user_templates_dir

    words = split_words(arg)
    template = session.bench.template
    if not words:
        emit(Notice(f"template: {template.name} ({template.origin}); /template NAME|PATH|gguf switches"))
        return
    info = session.bench.info
    template = choose_template(words[0], info.chat_template, info.name, user_templates_dir())
    from harness.errors import TemplateError
    from harness.prompt.markers import derive_markers

    try:
        derive_markers(template, session.bench.variables)
        located = None
    except TemplateError as exc:  # says where; lint says which check
        located = exc
    tokenizer = None if getattr(session.bench.engine, "url", None) else session.bench.engine
    findings, _ = lint(template, session.bench.variables, tokenizer)
    fatal = [f for f in findings if f.code in ("L001", "L012")]
    if fatal:
        raise CommandError(f"template {template.name} refused: {fatal[0].code} {fatal[0].message}",
                           where=located.where if located else None,
                           hint=f"harness lint {quote(words[0])} shows every finding")
    if located is not None:
        raise located
    session.bench.set_template(template)
    session.template_spec = words[0]
    emit(Notice(f"template: {template.name}"))
    for finding in findings:
        if finding.code == "L003":
            emit(Notice(f"{finding.code}: {finding.message} (under /eos stop the marker written as "
                        "text still ends the turn)", "warning"))


@COMMANDS.command("model")
def cmd_model(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """/model NAME [TEMPLATE]: the template is checked against the model's file before loading."""
    words = split_words(arg)
    if not words:
        info = session.bench.info
        emit(Notice(f"model: {info.name} ({info.path}), template {session.bench.template.name}"))
        return
    if len(words) > 2 or session.loader is None:
        raise CommandError("usage: /model NAME|PATH [TEMPLATE]")
    name = words[0]
    template = words[1] if len(words) > 1 else session.template_spec
    check_template_first(name, template)
    emit(Notice(f"loading {name} ..."))
    bench = session.loader(name, template, **session.engine_options)
    old, session.bench, session.model_spec, session.template_spec = session.bench, bench, name, template
    old.close()
    emit(Notice(f"model: {bench.info.name}  template: {bench.template.name}"))


def check_template_first(model: str, template: str | None) -> None:
    """Refuse, before loading anything, a model whose file has no chat template when the
    template asked for is its embedded one."""
    if template not in (None, "gguf"):
        return
    from harness.errors import ModelError
    from harness.models.gguf import read_gguf_info
    from harness.models.registry import resolve_model

    try:
        _, path = resolve_model(model)
        embedded = read_gguf_info(path).chat_template
    except ModelError:
        return  # the loader says what is wrong with the file
    if embedded is None:
        raise CommandError(f"{model} has no embedded chat template (the current template is gguf)",
                           hint=f"/model {model} raw  (or chatml, or a .jinja path)")


def set_system(session: Session, text: str | None) -> None:
    """Set, replace or remove the leading system message, keeping the tree's branches."""
    from harness.prompt.conversation import SYSTEM, Message

    tree = session.tree
    has = bool(len(tree)) and tree.node_at(0).message.role == SYSTEM  # type: ignore[union-attr]
    if has:
        session.change(tree.edit(0, text) if text else tree.delete(0))
    elif text:
        session.change(tree.insert(0, Message(SYSTEM, text)))


@COMMANDS.command("system")
def cmd_system(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Bare: show. --clear (or an empty quoted text) removes it; TEXT sets it."""
    from harness.prompt.conversation import SYSTEM

    if not arg.strip():
        first = session.conversation.messages[0] if len(session.conversation) else None
        shown = first.content if first is not None and first.role == SYSTEM else None
        emit(Notice(f"system prompt: {shown!r}" if shown is not None else
                    "no system prompt (/system TEXT sets one)"))
        return
    _, text = take_words(arg, 0)
    clear = arg.strip() == "--clear" or not text
    set_system(session, None if clear else text)
    emit(Notice("system prompt removed" if clear else "system prompt set"))


@COMMANDS.command("profile")
def cmd_profile(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Switch profile live: model and template when they differ, sampling, EOS, vars, system
    prompt; the conversation is kept. A profile that fails to load changes nothing."""
    from harness.generation.profiles import list_profiles, load_profile

    words = split_words(arg)
    if not words:
        emit(Notice(f"profile: {session.profile_name or '-'}; known: {', '.join(list_profiles())}"))
        return
    if len(words) > 1:
        raise CommandError("usage: /profile [NAME]")
    profile = load_profile(words[0])
    if profile.model and profile.model != session.model_spec and session.loader is not None:
        cmd_model(session, _quoted(profile.model, profile.template), emit, should_stop)
    if profile.template and profile.template != session.template_spec:
        cmd_template(session, _quoted(profile.template), emit, should_stop)
    session.params = profile.sampling
    session.context_overflow = profile.context_overflow
    session.bench.literal_content = profile.literal_content
    if profile.vars:
        for name, value in profile.vars.items():
            apply_setting(session, f"var.{name}", json.dumps(value))
    if profile.system is not None:
        set_system(session, profile.system)
    session.profile_name = profile.name
    emit(Notice(f"profile {profile.name}: {session.bench.info.name}, "
                f"template {session.bench.template.name}, eos {session.params.eos}"))


def _quoted(*words: str | None) -> str:
    return " ".join(quote(w) for w in words if w)


HANDLERS = COMMANDS.handlers
