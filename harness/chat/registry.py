"""Slash-command handlers by name: each topic module keeps a table and registers its handlers
with a decorator; :mod:`harness.chat.dispatch` reads the tables. No table is global."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., None]  # (session, argument, emit, should_stop) -> None


class CommandTable:
    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}

    def command(self, name: str) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of /`name`."""
        def register(handler: Handler) -> Handler:
            if name in self.handlers:
                raise ValueError(f"/{name} is registered twice")
            self.handlers[name] = handler
            return handler
        return register

    def get(self, name: str) -> Any:
        return self.handlers.get(name)
