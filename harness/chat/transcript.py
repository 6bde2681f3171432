"""What the session has generated and what the user is looking at: the one owner of both.

Every generated turn is kept in order (``generations``; a tree node's ``meta["gen"]`` is its
index), with the turn the model wrote past its own (for /adopt), the turn /tokens N chose to
inspect (for /alts and /branch), the last request (the toolbar) and the injections already
warned of (each once per message).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import CommandError
from harness.generation.records import Generation, role_summaries
from harness.prompt.conversation import Message
from harness.prompt.modes import REPLY


class Transcript:
    def __init__(self, generations: Sequence[Generation] = ()):
        self._generations: list[Generation] = list(generations)
        self._inspected: int | None = None  # path index /alts and /branch act on
        self._beyond: tuple[int, Message] | None = None  # (node id, the turn written past it)
        self._last_request: tuple[str, str] = (REPLY, "")
        self._warned: set[tuple[int | None, str]] = set()

    # -- reading -------------------------------------------------------------------------------
    @property
    def generations(self) -> tuple[Generation, ...]:
        return tuple(self._generations)

    def __len__(self) -> int:
        return len(self._generations)

    def __getitem__(self, index: int) -> Generation:
        return self._generations[index]

    @property
    def inspected(self) -> int | None:
        return self._inspected

    @property
    def last_request(self) -> tuple[str, str]:
        return self._last_request

    def roles(self) -> dict[str, dict[str, Any]]:
        """Per-role statistics of every generated token of the session."""
        return role_summaries([t for g in self._generations for t in g.tokens])

    # -- changing ------------------------------------------------------------------------------
    def asked(self, mode: str, text: str) -> None:
        self._last_request = (mode, text)

    def record(self, gen: Generation) -> int:
        """Keep a generated turn; its index. /alts and /branch now mean the newest turn."""
        self._generations.append(gen)
        self._inspected = None
        return len(self._generations) - 1

    def inspect(self, index: int | None) -> None:
        self._inspected = index

    def ran_past(self, node_id: int, beyond: Message | None) -> None:
        """The turn the model wrote past its own at node `node_id` (None: it did not)."""
        self._beyond = (node_id, beyond) if beyond is not None else None

    def take_beyond(self, last_node_id: int | None) -> Message:
        """The turn written past the last message, for /adopt (once)."""
        if self._beyond is None or self._beyond[0] != last_node_id:
            raise CommandError("nothing to adopt: the last message is not a turn that ran past its end",
                               hint="/eos continue lets the model write the next turn too")
        beyond, self._beyond = self._beyond[1], None
        return beyond

    def first_warning(self, key: tuple[int | None, str]) -> bool:
        """Whether an injection (message index, text) is new; it is warned of only once."""
        if key in self._warned:
            return False
        self._warned.add(key)
        return True

    def forget_view(self) -> None:
        """A fresh conversation: nothing inspected, nothing to adopt."""
        self._inspected, self._beyond = None, None
