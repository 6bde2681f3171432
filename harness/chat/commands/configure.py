"""Settings commands: /set (sampling keys, engine keys, template variables, display switches),
/eos, /bias, /template, /model, /system, /profile, /shade — each parsed and validated before
anything changes.

A bare command shows its state; changing it takes an argument (``/system --clear``,
``/set stop none``, ``/bias off``). Values are printed as they are typed back to /set. Turn
settings are replaced whole (harness.chat.turn_settings); the model, template, variables and
literal content change through the engine handle (harness.chat.engine_handle); display switches
through the front end's prefs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.prefs import ON_OFF
from harness.chat.registry import CommandTable
from harness.chat.slash import split_words, take_words
from harness.errors import CommandError
from harness.generation.settings import (
    BY_NAME,
    EOS_POLICIES,
    OVERFLOW_POLICIES,
    SETTINGS,
    check_overflow,
)
from harness.generation.settings import parse as parse_setting

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


SAMPLING_KEYS = tuple(s.name for s in SETTINGS if s.name != "logit_bias")  # /bias sets those
ENGINE_HELP = {
    "literal_content": "on: message content is tokenized as plain text (control-token strings stay text)",
    "context_overflow": f"{' | '.join(OVERFLOW_POLICIES)}: what a prompt longer than n_ctx does",
    "n_ctx": "context length in tokens (reloads the model)",
    "threads": "CPU threads (reloads the model)",
}
ENGINE_KEYS = tuple(ENGINE_HELP)
VARIABLE_KEY = "var.NAME"


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
    """Change one /set key (not a display switch); the line to show."""
    key = key.replace("-", "_")
    if key.startswith("var."):
        parsed = session.engine.set_var(key[4:], value)
        return f"template variable {key[4:]} = {parsed!r}"
    if key in ENGINE_KEYS:
        return set_engine(session, key, value)
    if key not in SAMPLING_KEYS:
        known = ", ".join([*SAMPLING_KEYS, *ENGINE_KEYS, VARIABLE_KEY, *session.prefs])
        raise CommandError(f"unknown setting '{key}'", hint=f"known: {known}")
    parsed = parse_setting(key, value)
    session.settings = session.settings.with_params(**{key: parsed})
    return f"{key} = {written(key, parsed)}"


def set_engine(session: Session, key: str, value: str) -> str:
    """literal_content, context_overflow; n_ctx and threads reopen the model with the new value."""
    if key == "literal_content":
        if value.lower() not in ON_OFF:
            raise CommandError("usage: /set literal_content on|off")
        session.engine.set_literal_content(ON_OFF[value.lower()])
        return f"literal_content = {written(key, session.bench.literal_content)}"
    if key == "context_overflow":
        if value not in OVERFLOW_POLICIES:
            raise CommandError(f"usage: /set context_overflow {'|'.join(OVERFLOW_POLICIES)}")
        session.settings = session.settings.updated(context_overflow=check_overflow(value))
        return f"context_overflow = {value}"
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"usage: /set {key} N (a whole number)") from None
    if number <= 0:
        raise CommandError(f"{key} must be > 0")
    session.engine.reload(**{key: number})
    return f"{key} = {number} (model reloaded; conversation kept)"


def current(session: Session) -> dict[str, object]:
    """Every /set key and its value."""
    values: dict[str, object] = {key: getattr(session.params, key) for key in SAMPLING_KEYS}
    values.update({"literal_content": session.bench.literal_content,
                   "context_overflow": session.settings.context_overflow, "n_ctx": session.bench.info.n_ctx,
                   "threads": session.engine.threads or "auto"})
    values.update({f"var.{k}": json.dumps(v) for k, v in session.bench.overrides.items()})
    values.update(session.prefs)
    return values


def describe_settings(session: Session) -> str:
    info = session.bench.info
    rows = [("model", f"{info.name}  ({info.path})"),
            ("template", f"{session.bench.template.name}  ({session.bench.template.origin})"),
            ("profile", session.settings.profile or "-"),
            ("bias", written("logit_bias", session.params.logit_bias))]
    rows += [(key, written(key, value)) for key, value in current(session).items()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:{width}}  {v}" for k, v in rows) + "\n(/set KEY VALUE changes one; /help set)"


def settings_rows(switches: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, what it takes) for every /set key; `switches` are the front end's display switches."""
    rows = [(key, f"{BY_NAME[key].help} ({BY_NAME[key].rule})") for key in SAMPLING_KEYS]
    rows += list(ENGINE_HELP.items()) + [(VARIABLE_KEY, "a template variable (JSON or text)")]
    return rows + list(switches.items())


def settings_help(switches: Mapping[str, str]) -> str:
    """The /set keys and what each takes (for /help set)."""
    rows = settings_rows(switches)
    width = max(len(k) for k, _ in rows)
    return "keys:\n" + "\n".join(f"  {k:{width}}  {v}" for k, v in rows)


# -- commands ----------------------------------------------------------------------------------
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
    if key in session.prefs:
        emit(Notice(session.prefs.set(key, value)))
        return
    emit(Notice(apply_setting(session, key, value)))


@COMMANDS.command("shade")
def cmd_shade(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if not words:
        shown = written("shade", session.prefs["shade"]) if "shade" in session.prefs else "-"
        emit(Notice(f"shade = {shown}"))
        return
    emit(Notice(session.prefs.set("shade", words[0])))


@COMMANDS.command("eos")
def cmd_eos(session: Session, arg: str, emit: Emit, should_stop) -> None:
    words = split_words(arg)
    if not words:
        emit(Notice(f"EOS policy: {session.params.eos}"))
        return
    if len(words) != 1 or words[0] not in EOS_POLICIES:
        raise CommandError(f"usage: /eos {'|'.join(EOS_POLICIES)}")
    session.settings = session.settings.with_params(eos=words[0])
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
        session.settings = session.settings.with_params(logit_bias=bias)
    emit(Notice(f"logit biases: {written('logit_bias', session.params.logit_bias)}"))


@COMMANDS.command("template")
def cmd_template(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Bare: show the template. Otherwise lint the new one first: refuse one that fails to render
    (L001) or whose roles cannot be told (L012); warn when its end of turn never stops the model."""
    words = split_words(arg)
    if not words:
        template = session.bench.template
        emit(Notice(f"template: {template.name} ({template.origin}); /template NAME|PATH|gguf switches"))
        return
    warnings = session.engine.switch_template(words[0])
    emit(Notice(f"template: {session.bench.template.name}"))
    for finding in warnings:
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
    if len(words) > 2 or not session.engine.can_reload:
        raise CommandError("usage: /model NAME|PATH [TEMPLATE]")
    emit(Notice(f"loading {words[0]} ..."))
    session.engine.switch_model(words[0], words[1] if len(words) > 1 else None)
    emit(Notice(f"model: {session.bench.info.name}  template: {session.bench.template.name}"))


def set_system(session: Session, text: str | None) -> None:
    """Set, replace or remove the leading system message, keeping the tree's branches."""
    from harness.prompt.conversation import SYSTEM, Message

    tree = session.tree
    has = bool(len(tree)) and tree.node_at(0).message.role == SYSTEM  # type: ignore[union-attr]
    if has:
        session.trees.change(tree.edit(0, text) if text else tree.delete(0))
    elif text:
        session.trees.change(tree.insert(0, Message(SYSTEM, text)))


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
    """Switch profile live: model and template when they differ, sampling, EOS, overflow, vars,
    literal content, system prompt; the conversation is kept. A profile that fails to load
    changes nothing; its values are applied directly (each part checks its own)."""
    from harness.chat.turn_settings import TurnSettings
    from harness.generation.profiles import list_profiles, load_profile

    words = split_words(arg)
    if not words:
        emit(Notice(f"profile: {session.settings.profile or '-'}; known: {', '.join(list_profiles())}"))
        return
    if len(words) > 1:
        raise CommandError("usage: /profile [NAME]")
    profile = load_profile(words[0])
    settings = TurnSettings(profile.sampling, profile.context_overflow, profile.name)
    engine = session.engine
    if profile.model and profile.model != engine.model_spec and engine.can_reload:
        emit(Notice(f"loading {profile.model} ..."))
        engine.switch_model(profile.model, profile.template)
    if profile.template and profile.template != engine.template_spec:
        for finding in engine.switch_template(profile.template):
            emit(Notice(f"{finding.code}: {finding.message}", "warning"))
    engine.set_literal_content(profile.literal_content)
    if profile.vars:
        engine.set_vars(profile.vars)
    if profile.system is not None:
        set_system(session, profile.system)
    session.settings = settings
    emit(Notice(f"profile {profile.name}: {session.bench.info.name}, "
                f"template {session.bench.template.name}, eos {session.params.eos}"))
