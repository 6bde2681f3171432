"""Settings commands: /set (sampling keys, template variables, display switches), /eos, /bias,
/template, /model, /system, /profile, /shade — each parsed and validated before anything changes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.chat.events import Emit, Notice
from harness.chat.registry import CommandTable
from harness.errors import CommandError
from harness.generation.settings import EOS_POLICIES, SETTINGS
from harness.generation.settings import parse as parse_setting

if TYPE_CHECKING:
    from harness.chat.session import Session


COMMANDS = CommandTable()


SAMPLING_KEYS = tuple(s.name for s in SETTINGS if s.name != "logit_bias")  # /bias sets those
SETTING_KEYS = (*SAMPLING_KEYS, "var.NAME", "shade", "multiline", "vi")


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
    if key not in SAMPLING_KEYS:
        known = ", ".join([*SAMPLING_KEYS, "var.NAME"])
        raise CommandError(f"unknown setting '{key}'", hint=f"known: {known}")
    parsed = parse_setting(key, value)
    session.params = session.params.updated(**{key: parsed})
    return f"{key} = {parsed!r}"


def describe_settings(session: Session) -> str:
    info = session.bench.info
    lines = [f"model        {info.name}  ({info.path})",
             f"template     {session.bench.template.name}  ({session.bench.template.origin})",
             f"n_ctx        {info.n_ctx}"]
    for key, value in session.params.to_dict().items():
        lines.append(f"{key:12} {value!r}")
    lines.append(f"context_overflow {session.context_overflow}")
    lines.append(f"literal_content  {session.bench.literal_content}")
    for key, value in session.ui.items():
        lines.append(f"{key:12} {'on' if value else 'off'}")
    lines.append(f"profile      {session.profile_name or '-'}")
    if session.bench.overrides:
        lines.append(f"vars         {session.bench.overrides!r}")
    return "\n".join(lines)


# -- commands ----------------------------------------------------------------------------------
ON_OFF = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


@COMMANDS.command("set")
def cmd_set(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not arg:
        emit(Notice(describe_settings(session)))
        return
    key, _, value = arg.partition(" ")
    if key in session.ui:
        emit(Notice(set_ui(session, key, value.strip())))
        return
    emit(Notice(apply_setting(session, key, value.strip())))


def set_ui(session: Session, key: str, value: str) -> str:
    """Display and input settings (the REPL reads them): shade, multiline, vi."""
    if value.lower() not in ON_OFF:
        raise CommandError(f"usage: /set {key} on|off")
    session.ui[key] = ON_OFF[value.lower()]
    return f"{key} = {'on' if session.ui[key] else 'off'}"


@COMMANDS.command("shade")
def cmd_shade(session: Session, arg: str, emit: Emit, should_stop) -> None:
    emit(Notice(set_ui(session, "shade", arg or ("off" if session.ui["shade"] else "on"))))


@COMMANDS.command("eos")
def cmd_eos(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if arg not in EOS_POLICIES:
        raise CommandError(f"usage: /eos {'|'.join(EOS_POLICIES)}")
    session.params = session.params.updated(eos=arg)
    emit(Notice(f"EOS policy: {arg}"))


@COMMANDS.command("bias")
def cmd_bias(session: Session, arg: str, emit: Emit, should_stop) -> None:
    token, _, value = arg.rpartition(" ")
    if not token:
        raise CommandError("usage: /bias TOKEN VALUE|off")
    bias = dict(session.params.logit_bias)
    if value in ("off", "clear", "none"):
        bias.pop(token, None)
    else:
        try:
            number = float(value)
        except ValueError:
            raise CommandError(f"bias value '{value}' is not a number (or off)") from None
        from harness.generation.turn import resolve_bias

        resolve_bias(session.bench.engine, {token: number}, session.bench.info.n_vocab)  # reject a bad token now
        bias[token] = number
    session.params = session.params.updated(logit_bias=bias)
    emit(Notice(f"logit biases: {bias or 'none'}"))


@COMMANDS.command("template")
def cmd_template(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.generation.workbench import choose_template
    from harness.paths import user_templates_dir

    info = session.bench.info
    template = choose_template(arg or None, info.chat_template, info.name, user_templates_dir())
    session.bench.set_template(template)
    session.template_spec = arg or None
    emit(Notice(f"template: {template.name}"))


@COMMANDS.command("model")
def cmd_model(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not arg or session.loader is None:
        raise CommandError("usage: /model NAME|PATH")
    emit(Notice(f"loading {arg} ..."))
    bench = session.loader(arg, session.template_spec)
    old, session.bench, session.model_spec = session.bench, bench, arg
    old.close()
    emit(Notice(f"model: {bench.info.name}  template: {bench.template.name}"))


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
    set_system(session, arg or None)
    emit(Notice("system prompt set" if arg else "system prompt removed"))


@COMMANDS.command("profile")
def cmd_profile(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Switch profile live: model and template when they differ, sampling, EOS, vars, system
    prompt; the conversation is kept. A profile that fails to load changes nothing."""
    from harness.generation.profiles import list_profiles, load_profile

    if not arg:
        emit(Notice(f"profile: {session.profile_name or '-'}; known: {', '.join(list_profiles())}"))
        return
    profile = load_profile(arg)
    if profile.model and profile.model != session.model_spec and session.loader is not None:
        cmd_model(session, profile.model, emit, should_stop)
    if profile.template and profile.template != session.template_spec:
        cmd_template(session, profile.template, emit, should_stop)
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


HANDLERS = COMMANDS.handlers
