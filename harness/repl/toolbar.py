"""The bottom toolbar: model, template, mode, EOS policy, speed, context used, role entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.chat.session import Session

ROLE_STYLES = {
    "system": "ansiyellow", "user": "ansigreen", "assistant": "ansicyan", "template": "ansibrightblack",
}


def toolbar_fragments(session: Session) -> list[tuple[str, str]]:
    info = session.bench.info
    mode, text = session.transcript.last_request
    parts: list[tuple[str, str]] = [
        ("bold", f" {info.name} "), ("", f"| template {session.bench.template.name} "),
        ("", f"| last mode {mode}{' ' + repr(text) if text else ''} "),
        ("bold" if session.params.eos != "stop" else "", f"| eos {session.params.eos} "),
        ("", f"| T {session.params.temperature:g} "),
    ]
    if len(session.transcript):
        parts.append(("", f"| {session.transcript[-1].tokens_per_second:.0f} tok/s "))
    used = session.bench.context_used()
    parts.append(("bold" if used > 0.9 * info.n_ctx else "", f"| ctx {used}/{info.n_ctx} "))
    roles = session.transcript.roles()
    if roles:
        parts.append(("", "| H̄ bits:"))
        for role, summary in roles.items():
            mean = summary["mean_entropy_bits"]
            if mean is not None:
                parts.append((f"{ROLE_STYLES.get(role, '')} reverse", f" {role} {mean:.2f} "))
    return parts
