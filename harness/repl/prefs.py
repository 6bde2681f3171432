"""The REPL's own switches (``/set shade|multiline|vi on|off``): what the display and the key
bindings read."""

from __future__ import annotations

from harness.chat.prefs import Prefs, Switch

SWITCHES = (
    Switch("shade", True, "on|off: shade streamed tokens by entropy"),
    Switch("multiline", False, "on|off: Enter inserts a newline, Alt-Enter sends"),
    Switch("vi", False, "on|off: Vi editing keys"),
)


def repl_prefs() -> Prefs:
    return Prefs(SWITCHES)
