"""`/set KEY VALUE`: the settings a session can change, parsed and validated one by one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.errors import CommandError

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
    if session.bench.overrides:
        lines.append(f"vars         {session.bench.overrides!r}")
    return "\n".join(lines)
