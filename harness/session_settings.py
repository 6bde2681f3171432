"""Settings commands: /set (sampling keys, template variables, display switches), /eos, /bias,
/template, /model, /system, /profile, /shade — each parsed and validated before anything changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.errors import CommandError
from harness.events import Emit, Notice
from harness.sampling import EOS_POLICIES

if TYPE_CHECKING:
    from harness.session import Session


def _seed(value: str) -> int | None:
    return None if value.lower() in ("none", "random", "") else int(value)


def _stop(value: str) -> tuple[str, ...]:
    if not value or value.lower() == "none":
        return ()
    try:
        parsed = json.loads(value)
    except ValueError:
        return (value,)
    return tuple(str(s) for s in (parsed if isinstance(parsed, list) else [parsed]))


_PARSERS: dict[str, Callable[[str], Any]] = {
    "temperature": float, "top_k": int, "top_p": float, "min_p": float,
    "repeat_penalty": float, "repeat_last_n": int, "seed": _seed, "max_tokens": int,
    "stop": _stop, "eos": str,
}


SETTING_KEYS = (*_PARSERS, "var.NAME", "shade", "multiline", "vi")


def apply_setting(session: Session, key: str, value: str) -> str:
    key = key.replace("-", "_")
    if key.startswith("var."):
        name = key[4:]
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        overrides = {**session.bench.overrides, name: parsed}
        from harness.markers import derive_markers

        markers = derive_markers(session.bench.template, {**session.bench.variables, name: parsed})
        session.bench.overrides, session.bench.markers = overrides, markers
        return f"template variable {name} = {parsed!r}"
    if key not in _PARSERS:
        known = ", ".join([*_PARSERS, "var.NAME"])
        raise CommandError(f"unknown setting '{key}'", hint=f"known: {known}")
    try:
        parsed = _PARSERS[key](value)
    except ValueError:
        raise CommandError(f"'{value}' is not a valid value for {key}") from None
    session.params = session.params.updated(**{key: parsed})
    return f"{key} = {parsed!r}"


def describe_settings(session: Session) -> str:
    info = session.bench.backend.info
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


def cmd_shade(session: Session, arg: str, emit: Emit, should_stop) -> None:
    emit(Notice(set_ui(session, "shade", arg or ("off" if session.ui["shade"] else "on"))))


def cmd_eos(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if arg not in EOS_POLICIES:
        raise CommandError(f"usage: /eos {'|'.join(EOS_POLICIES)}")
    session.params = session.params.updated(eos=arg)
    emit(Notice(f"EOS policy: {arg}"))


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
        from harness.generate import resolve_bias

        resolve_bias(session.bench.backend, {token: number})  # reject a bad token now
        bias[token] = number
    session.params = session.params.updated(logit_bias=bias)
    emit(Notice(f"logit biases: {bias or 'none'}"))


def cmd_template(session: Session, arg: str, emit: Emit, should_stop) -> None:
    from harness.paths import user_templates_dir
    from harness.workbench import choose_template

    info = session.bench.backend.info
    template = choose_template(arg or None, info.chat_template, info.name, user_templates_dir())
    session.bench.set_template(template)
    session.template_spec = arg or None
    emit(Notice(f"template: {template.name}"))


def cmd_model(session: Session, arg: str, emit: Emit, should_stop) -> None:
    if not arg or session.loader is None:
        raise CommandError("usage: /model NAME|PATH")
    emit(Notice(f"loading {arg} ..."))
    bench = session.loader(arg, session.template_spec)
    old, session.bench, session.model_spec = session.bench, bench, arg
    old.close()
    emit(Notice(f"model: {bench.backend.info.name}  template: {bench.template.name}"))


def set_system(session: Session, text: str | None) -> None:
    """Set, replace or remove the leading system message, keeping the tree's branches."""
    from harness.conversation import SYSTEM, Message

    tree = session.tree
    has = bool(len(tree)) and tree.node_at(0).message.role == SYSTEM  # type: ignore[union-attr]
    if has:
        session.change(tree.edit(0, text) if text else tree.delete(0))
    elif text:
        session.change(tree.insert(0, Message(SYSTEM, text)))


def cmd_system(session: Session, arg: str, emit: Emit, should_stop) -> None:
    set_system(session, arg or None)
    emit(Notice("system prompt set" if arg else "system prompt removed"))


def cmd_profile(session: Session, arg: str, emit: Emit, should_stop) -> None:
    """Switch profile live: model and template when they differ, sampling, EOS, vars, system
    prompt; the conversation is kept. A profile that fails to load changes nothing."""
    from harness.profiles import list_profiles, load_profile

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
    emit(Notice(f"profile {profile.name}: {session.bench.backend.info.name}, "
                f"template {session.bench.template.name}, eos {session.params.eos}"))


HANDLERS = {"set": cmd_set, "shade": cmd_shade, "eos": cmd_eos, "bias": cmd_bias,
            "template": cmd_template, "model": cmd_model, "system": cmd_system, "profile": cmd_profile}
