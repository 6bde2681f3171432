"""The session's conversation tree and its undo history: the one owner of both.

Every change of the tree goes through :meth:`TreeHistory.change`, which remembers the old tree
for /undo (at most UNDO_DEPTH steps); /undo and /redo move trees between the two stacks. A
command that fails takes its changes back with :meth:`rollback` to the :meth:`mark` made before
it. Trees are immutable values (harness.chat.tree), so a stack of them loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.chat.tree import Tree
from harness.errors import CommandError
from harness.prompt.conversation import Conversation

UNDO_DEPTH = 200


@dataclass(frozen=True)
class Mark:
    """Where the history stood (for :meth:`TreeHistory.rollback`)."""

    tree: Tree
    undo: tuple[Tree, ...]
    redo: tuple[Tree, ...]


class TreeHistory:
    def __init__(self, tree: Tree | None = None):
        self._tree = tree if tree is not None else Tree()
        self._undo: list[Tree] = []
        self._redo: list[Tree] = []

    @classmethod
    def of(cls, conversation: Conversation) -> TreeHistory:
        """A history whose tree is `conversation` (nothing to undo)."""
        return cls(Tree.from_conversation(conversation))

    @property
    def tree(self) -> Tree:
        return self._tree

    @property
    def conversation(self) -> Conversation:
        return self._tree.conversation()

    def change(self, tree: Tree) -> None:
        """Replace the tree, remembering the old one for /undo."""
        if tree is self._tree:
            return
        self._undo.append(self._tree)
        del self._undo[:-UNDO_DEPTH]
        self._redo.clear()
        self._tree = tree

    def undo(self) -> None:
        if not self._undo:
            raise CommandError("nothing to undo")
        self._redo.append(self._tree)
        self._tree = self._undo.pop()

    def redo(self) -> None:
        if not self._redo:
            raise CommandError("nothing to redo")
        self._undo.append(self._tree)
        self._tree = self._redo.pop()

    def mark(self) -> Mark:
        return Mark(self._tree, tuple(self._undo), tuple(self._redo))

    def rollback(self, mark: Mark) -> bool:
        """Back to `mark`; whether the tree had changed since."""
        changed = self._tree is not mark.tree
        self._tree, self._undo, self._redo = mark.tree, list(mark.undo), list(mark.redo)
        return changed
