"""A conversation with branches: a tree of message nodes with a chosen child at each node.

The linear `Conversation` the template renders is the chosen path from the root. Swipes
(/retry), branches at a token (/branch) and alternatives of any message are siblings under the
same parent; picking one re-routes the path below that parent. Trees are immutable values: every
operation returns a new tree, so undo/redo is a stack of trees and nothing is ever lost
in between.

Positions are *path indexes*: message ``i`` of the chosen path (0-based), as `/messages` lists
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import CommandError
from harness.prompt.conversation import Conversation, Message

ROOT = 0


@dataclass(frozen=True)
class Node:
    id: int
    parent: int | None
    message: Message | None  # None only for the root
    children: tuple[int, ...] = ()
    chosen: int | None = None  # id of the chosen child; None ends the path here
    meta: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"gen": 3, "mode": "reply"}


@dataclass(frozen=True)
class Tree:
    nodes: Mapping[int, Node] = field(default_factory=lambda: {ROOT: Node(ROOT, None, None)})
    next_id: int = 1

    # -- reading -------------------------------------------------------------------------------
    def path(self) -> list[Node]:
        """The chosen path's message nodes, root excluded."""
        out, node = [], self.nodes[ROOT]
        while node.chosen is not None:
            node = self.nodes[node.chosen]
            out.append(node)
        return out

    def conversation(self) -> Conversation:
        return Conversation(tuple(n.message for n in self.path() if n.message is not None))

    def node_at(self, index: int) -> Node:
        path = self.path()
        if not path:
            raise CommandError("the conversation is empty")
        if not -len(path) <= index < len(path):
            raise CommandError(f"no message {index}", hint=f"messages are 0..{len(path) - 1} (/messages)")
        return path[index]

    def parent_of(self, index: int) -> Node:
        node = self.node_at(index)
        assert node.parent is not None
        return self.nodes[node.parent]

    def siblings(self, index: int) -> tuple[int, ...]:
        """Ids of the alternatives at path position `index`, the chosen one included."""
        return self.parent_of(index).children

    def __len__(self) -> int:
        return len(self.path())

    # -- building ------------------------------------------------------------------------------
    def _with(self, *changed: Node, next_id: int | None = None) -> Tree:
        nodes = dict(self.nodes)
        for node in changed:
            nodes[node.id] = node
        return Tree(nodes, self.next_id if next_id is None else next_id)

    def _tip(self, index: int | None) -> Node:
        """The node after which position `index` starts (the root for 0; the end for None)."""
        if index is None:
            path = self.path()
            return path[-1] if path else self.nodes[ROOT]
        if index == 0:
            return self.nodes[ROOT]
        return self.node_at(index - 1)

    def add_child(self, parent_id: int, message: Message, meta: Mapping[str, Any] | None = None) -> Tree:
        """A new chosen child of `parent_id`; the path ends at it."""
        parent = self.nodes[parent_id]
        child = Node(self.next_id, parent_id, message, meta=dict(meta or {}))
        parent = replace(parent, children=parent.children + (child.id,), chosen=child.id)
        return self._with(parent, child, next_id=self.next_id + 1)

    def append(self, message: Message, meta: Mapping[str, Any] | None = None) -> Tree:
        return self.add_child(self._tip(None).id, message, meta)

    def add_alternative(self, index: int, message: Message, meta: Mapping[str, Any] | None = None) -> Tree:
        """A sibling of message `index` (a swipe or a branch), chosen; the path ends at it."""
        return self.add_child(self.parent_of(index).id, message, meta)

    def choose(self, index: int, which: int) -> Tree:
        """Choose sibling number `which` (0-based) at position `index`."""
        parent = self.parent_of(index)
        if not 0 <= which < len(parent.children):
            raise CommandError(f"no alternative {which + 1}", hint=f"there are {len(parent.children)}")
        return self._with(replace(parent, chosen=parent.children[which]))

    def edit(self, index: int, content: str | None = None, role: str | None = None) -> Tree:
        """Change message `index` in place (later messages stay)."""
        node = self.node_at(index)
        assert node.message is not None
        message = replace(node.message, content=node.message.content if content is None else content,
                          role=role or node.message.role)
        return self._with(_edited(node, message))

    def replace_message(self, index: int, message: Message) -> Tree:
        """Message `index` replaced whole (role, content and every other field)."""
        return self._with(_edited(self.node_at(index), message))

    def delete(self, index: int) -> Tree:
        """Remove message `index` from the path; its chosen continuation moves up to its parent.
        Its other alternatives below it go with it (/undo brings them back)."""
        node, parent = self.node_at(index), self.parent_of(index)
        kids = list(parent.children)
        changed: list[Node] = []
        if node.chosen is not None:
            kids[kids.index(node.id)] = node.chosen
            changed.append(replace(self.nodes[node.chosen], parent=parent.id))
            chosen: int | None = node.chosen
        else:
            kids.remove(node.id)
            chosen = None
        tree = self._with(replace(parent, children=tuple(kids), chosen=chosen), *changed)
        nodes = dict(tree.nodes)
        for gone in _subtree(self, node.id, keep=node.chosen):
            nodes.pop(gone, None)
        return Tree(nodes, tree.next_id)

    def insert(self, index: int, message: Message) -> Tree:
        """A new message at position `index` (0 <= index <= len); later messages follow it."""
        length = len(self)
        if not 0 <= index <= length:
            raise CommandError(f"cannot insert at {index}", hint=f"positions are 0..{length}")
        if index == length:
            return self.append(message)
        parent, after = self._tip(index), self.node_at(index)
        new = Node(self.next_id, parent.id, message, children=(after.id,), chosen=after.id)
        kids = tuple(new.id if k == after.id else k for k in parent.children)
        return self._with(replace(parent, children=kids, chosen=new.id), new,
                          replace(after, parent=new.id), next_id=self.next_id + 1)

    def truncate(self, length: int) -> Tree:
        """End the chosen path after `length` messages (the rest stays reachable as a branch)."""
        return self._with(replace(self._tip(length), chosen=None))

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "nodes": [
            {"id": n.id, "parent": n.parent, "children": list(n.children), "chosen": n.chosen,
             "message": n.message.to_dict() if n.message else None, "meta": dict(n.meta)}
            for n in self.nodes.values()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tree:
        nodes = {}
        for item in data["nodes"]:
            message = None
            if item.get("message") is not None:
                message = Conversation.from_dicts([item["message"]]).messages[0]
            nodes[int(item["id"])] = Node(int(item["id"]), item.get("parent"), message,
                                          tuple(item.get("children") or ()), item.get("chosen"),
                                          dict(item.get("meta") or {}))
        if ROOT not in nodes:
            raise ValueError("no root node")
        return cls(nodes, int(data.get("next_id", max(nodes) + 1)))

    @classmethod
    def from_conversation(cls, conversation: Conversation) -> Tree:
        tree = cls()
        for message in conversation:
            tree = tree.append(message)
        return tree


def _edited(node: Node, message: Message) -> Node:
    """`node` holding `message`; a generated message whose text changed is marked ``edited`` (its
    turn's tokens no longer spell it)."""
    changed = node.message is None or message.to_dict() != {**node.message.to_dict(), "role": message.role}
    meta = {**node.meta, "edited": True} if "gen" in node.meta and changed else node.meta
    return replace(node, message=message, meta=meta)


def _subtree(tree: Tree, top: int, keep: int | None) -> list[int]:
    """Ids under (and including) `top`, except the subtree rooted at `keep`."""
    out, stack = [], [top]
    while stack:
        current = stack.pop()
        if current == keep:
            continue
        out.append(current)
        stack.extend(tree.nodes[current].children)
    return out
