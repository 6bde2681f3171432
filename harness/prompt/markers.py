"""Turn markers derived from a template by rendering probe conversations.

Nothing here is written per template. The probes are conversations whose contents are
sentinels; the text between two sentinels is "close of one turn + open of the next", the text
after the last one is the close of the final turn, and what ``add_generation_prompt`` appends
is the assistant's open. Subtracting the known parts from the gaps yields each role's open and
close. These markers drive role attribution of generated text and run-past-EOS parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import TemplateError
from harness.prompt.conversation import ASSISTANT, SYSTEM, USER
from harness.prompt.segments import SENTINEL_RE, sentinel
from harness.prompt.templates import ChatTemplate


@dataclass(frozen=True)
class TurnMarkers:
    """What opens and closes each role's turn; empty strings where the template writes nothing."""

    opens: Mapping[str, str] = field(default_factory=dict)
    closes: Mapping[str, str] = field(default_factory=dict)
    generation_prompt: str = ""
    system_folded: bool = False  # the template has no system turn of its own (e.g. Gemma)

    def to_dict(self) -> dict[str, Any]:
        return {"opens": dict(self.opens), "closes": dict(self.closes),
                "generation_prompt": self.generation_prompt, "system_folded": self.system_folded}


def _pieces(template: ChatTemplate, roles: list[str], gen: bool,
            variables: Mapping[str, Any] | None) -> list[str] | None:
    messages = [{"role": r, "content": sentinel(i)} for i, r in enumerate(roles)]
    try:
        text = template.render(messages, add_generation_prompt=gen, variables=variables)
    except TemplateError:
        return None
    pieces = SENTINEL_RE.split(text)
    return pieces if len(pieces) == len(roles) + 1 else None


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def _strip_suffix(text: str, suffix: str) -> str:
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text


_BOS = "\ue002"  # stands in for bos_token while probing, so a BOS the template writes is seen


def derive_markers(template: ChatTemplate, variables: Mapping[str, Any] | None = None) -> TurnMarkers:
    """Derive a template's turn markers; raises TemplateError if it cannot render a plain chat."""
    bos = str((variables or {}).get("bos_token") or "")
    probing = {**(variables or {}), "bos_token": _BOS}
    markers = _derive(template, probing)

    def real(text: str) -> str:
        return text.replace(_BOS, bos)

    return TurnMarkers({r: real(t) for r, t in markers.opens.items()},
                       {r: real(t) for r, t in markers.closes.items()},
                       real(markers.generation_prompt), markers.system_folded)


def _derive(template: ChatTemplate, variables: Mapping[str, Any]) -> TurnMarkers:
    dialogue = _pieces(template, [USER, ASSISTANT, USER, ASSISTANT], False, variables)
    if dialogue is None:
        # Render once more without catching, so the user sees why the template fails.
        template.render([{"role": USER, "content": "hi"}, {"role": ASSISTANT, "content": "hello"}],
                        add_generation_prompt=False, variables=variables)
        raise TemplateError("template does not place each message's content once",
                            where=template.name, hint="turn markers cannot be derived")
    user_only = _pieces(template, [USER], False, variables)
    with_prompt = _pieces(template, [USER], True, variables)

    close_assistant = dialogue[4]
    close_user = user_only[1] if user_only else ""
    generation_prompt = ""
    if user_only and with_prompt and with_prompt[1].startswith(user_only[1]):
        generation_prompt = with_prompt[1][len(user_only[1]):]
    if close_user and not dialogue[1].startswith(close_user):
        close_user = ""
    open_assistant = _strip_prefix(dialogue[1], close_user)
    open_user = _strip_prefix(dialogue[2], close_assistant)

    opens = {USER: open_user, ASSISTANT: open_assistant}
    closes = {USER: close_user, ASSISTANT: close_assistant}
    system = _pieces(template, [SYSTEM, USER, ASSISTANT], False, variables)
    folded = False
    if system is not None:
        open_system = system[0].split(_BOS)[-1]
        folded = open_system == open_user or not system[1].endswith(open_user)
        if not folded:
            opens[SYSTEM] = open_system
            closes[SYSTEM] = _strip_suffix(system[1], open_user)
    return TurnMarkers(opens, closes, generation_prompt, folded)
