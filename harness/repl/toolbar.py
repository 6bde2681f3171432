"""The bottom toolbar: model, template, mode, EOS policy, speed, context used, role entropy.

On a narrow terminal the least needed parts go first (the last mode, then the template, the
speed, ...), so the entropy figures and the context used stay in view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.repl.palette import role_style

if TYPE_CHECKING:
    from harness.chat.session import Session

Fragments = list[tuple[str, str]]


def toolbar_fragments(session: Session, width: int | None = None) -> Fragments:
    """The toolbar's (style, text) pairs, fitted to `width` columns (None: all of them)."""
    info = session.bench.info
    mode, text = session.transcript.last_request
    used = session.bench.context_used()
    # (priority: lower stays longer, fragments)
    parts: list[tuple[int, Fragments]] = [
        (0, [("bold", f" {info.name} ")]),
        (6, [("", f"| template {session.bench.template.name} ")]),
        (7, [("", f"| last mode {mode}{' ' + repr(text) if text else ''} ")]),
        (3, [("bold" if session.params.eos != "stop" else "", f"| eos {session.params.eos} ")]),
        (4, [("", f"| T {session.params.temperature:g} ")]),
    ]
    if len(session.transcript):
        parts.append((5, [("", f"| {session.transcript[-1].tokens_per_second:.0f} tok/s ")]))
    parts.append((1, [("bold" if used > 0.9 * info.n_ctx else "", f"| ctx {used}/{info.n_ctx} ")]))
    entropy: Fragments = []
    for role, summary in session.transcript.roles().items():
        mean = summary["mean_entropy_bits"]
        if mean is not None:
            entropy.append((f"{role_style(role)} reverse", f" {role} {mean:.2f} "))
    if entropy:
        parts.append((2, [("", "| H̄ bits:"), *entropy]))
    while width is not None and len(parts) > 1 and sum(len(t) for _, f in parts for _, t in f) > width:
        parts.remove(max(parts, key=lambda p: p[0]))
    return [fragment for _, fragments in parts for fragment in fragments]
