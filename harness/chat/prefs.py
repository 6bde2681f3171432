"""Display and input switches a front end declares (the REPL: shade, multiline, vi).

The chat layer only routes ``/set KEY on|off`` to them and saves them with the session; which
switches exist and what they do belongs to the front end that reads them (harness.repl.prefs).
A session without a front end has none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from harness.errors import CommandError

ON_OFF = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


@dataclass(frozen=True)
class Switch:
    name: str
    default: bool
    help: str


class Prefs(Mapping[str, bool]):
    """On/off switches by name; written only through :meth:`set` and :meth:`restore`."""

    def __init__(self, switches: tuple[Switch, ...] = ()):
        self.switches = {s.name: s for s in switches}
        self._values = {s.name: s.default for s in switches}

    def __getitem__(self, key: str) -> bool:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def set(self, key: str, word: str) -> str:
        """Set switch `key` from on/off; the line to show."""
        if key not in self._values:
            raise CommandError(f"{key} is a setting of the interactive REPL")
        if word.lower() not in ON_OFF:
            raise CommandError(f"usage: /set {key} on|off")
        self._values[key] = ON_OFF[word.lower()]
        return f"{key} = {'on' if self._values[key] else 'off'}"

    def restore(self, saved: Mapping[str, object]) -> None:
        """The switches a saved session had (unknown names and non-booleans are ignored)."""
        for key, value in saved.items():
            if key in self._values and isinstance(value, bool):
                self._values[key] = value

    def help(self) -> dict[str, str]:
        return {name: s.help for name, s in self.switches.items()}
