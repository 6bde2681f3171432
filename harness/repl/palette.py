"""Which colour each role is drawn in, everywhere the REPL draws roles (live view, /tokens, /raw,
/messages, the toolbar, /help colours).

The seven roles harness attributes tokens to have fixed colours; any other role a conversation
invents (``admin``, ``narrator``) gets one of a few others, chosen from its name so it keeps its
colour from one session to the next.
"""

from __future__ import annotations

ROLE_STYLES = {
    "system": "ansiyellow", "user": "ansigreen", "assistant": "ansicyan", "template": "ansibrightblack",
    "reasoning": "ansimagenta", "tool_call": "ansiblue", "tool": "ansibrightyellow",
}
OTHER_STYLES = ("ansibrightgreen", "ansibrightcyan", "ansibrightmagenta", "ansibrightblue", "ansibrightred")


def role_style(role: str | None) -> str:
    """The style of `role` (a known one's, or one of OTHER_STYLES by its name; none for None)."""
    if not role:
        return ""
    known = ROLE_STYLES.get(role)
    if known is not None:
        return known
    return OTHER_STYLES[sum(role.encode("utf-8")) % len(OTHER_STYLES)]
