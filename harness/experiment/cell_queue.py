"""Which cell a server runs next, when an experiment's cells are spread over several servers.

Cells sharing a template and a conversation render prompts with a common prefix, which a
server's prompt cache keeps between requests; so a server is handed a whole group of them and
works through it in order. Once every group has been handed out, an idle server takes the back
half of the largest group another server still holds (a group split in two still shares its
prefix on both servers). A cell being run is not in the queue: a server that fails keeps it
(it stays pending in the database) and hands back the rest of its group.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, Protocol, TypeVar


class _Grouped(Protocol):
    @property
    def template(self) -> str: ...

    @property
    def conversation(self) -> str: ...


C = TypeVar("C", bound=_Grouped)


def prefix_groups(cells: Iterable[C]) -> list[list[C]]:
    """Cells grouped by (template, conversation), groups and cells in their first order."""
    groups: dict[Hashable, list[C]] = {}
    for cell in cells:
        groups.setdefault((cell.template, cell.conversation), []).append(cell)
    return list(groups.values())


class CellQueue(Generic[C]):
    """Thread-safe: servers (named by any string) call :meth:`take` until it returns None."""

    def __init__(self, cells: Iterable[C]):
        self._groups: deque[deque[C]] = deque(deque(g) for g in prefix_groups(cells))
        self._held: dict[str, deque[C]] = {}
        self._lock = threading.Lock()

    def take(self, server: str) -> C | None:
        """The next cell for `server`: from its group, a new group, or half of the largest
        group held by another server; None when nothing is left to hand out."""
        with self._lock:
            own = self._held.get(server)
            if not own:
                own = self._next_group(server)
                if own is None:
                    return None
                self._held[server] = own
            return own.popleft()

    def _next_group(self, server: str) -> deque[C] | None:
        if self._groups:
            return self._groups.popleft()
        others = [g for s, g in self._held.items() if s != server and g]
        if not others:
            return None
        largest = max(others, key=len)
        half = deque(largest.pop() for _ in range((len(largest) + 1) // 2))
        half.reverse()
        return half

    def release(self, server: str) -> None:
        """`server` stops: the cells it held but had not started go back to the queue first."""
        with self._lock:
            rest = self._held.pop(server, None)
            if rest:
                self._groups.appendleft(rest)

    def __len__(self) -> int:
        with self._lock:
            return sum(map(len, self._groups)) + sum(map(len, self._held.values()))
