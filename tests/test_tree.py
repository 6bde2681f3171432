"""The conversation tree: the chosen path is the conversation; alternatives are never lost."""

from __future__ import annotations

import pytest

from harness.chat.tree import Tree
from harness.errors import CommandError
from harness.prompt.conversation import Message


def contents(tree: Tree) -> list[str]:
    return [m.content for m in tree.conversation()]


def three() -> Tree:
    tree = Tree()
    for role, text in (("user", "a"), ("assistant", "b"), ("user", "c")):
        tree = tree.append(Message(role, text))
    return tree


def test_append_and_path():
    assert contents(three()) == ["a", "b", "c"]
    assert len(Tree()) == 0 and contents(Tree()) == []


def test_alternatives_are_siblings_and_choosing_reroutes_the_path():
    tree = three()
    swiped = tree.add_alternative(1, Message("assistant", "B2"))
    assert contents(swiped) == ["a", "B2"]  # a new candidate ends the path
    assert len(swiped.siblings(1)) == 2
    back = swiped.choose(1, 0)
    assert contents(back) == ["a", "b", "c"]  # the old branch, with its continuation
    assert contents(back.choose(1, 1)) == ["a", "B2"]
    assert contents(tree) == ["a", "b", "c"]  # values: the original is untouched
    with pytest.raises(CommandError):
        swiped.choose(1, 5)


@pytest.mark.parametrize(("op", "expected"), [
    (lambda t: t.edit(1, "B"), ["a", "B", "c"]),
    (lambda t: t.edit(0, role="system"), ["a", "b", "c"]),
    (lambda t: t.delete(0), ["b", "c"]),
    (lambda t: t.delete(1), ["a", "c"]),
    (lambda t: t.delete(2), ["a", "b"]),
    (lambda t: t.insert(0, Message("system", "s")), ["s", "a", "b", "c"]),
    (lambda t: t.insert(2, Message("user", "x")), ["a", "b", "x", "c"]),
    (lambda t: t.insert(3, Message("user", "x")), ["a", "b", "c", "x"]),
    (lambda t: t.truncate(1), ["a"]),
])
def test_linear_edits(op, expected):
    assert contents(op(three())) == expected


def test_delete_keeps_the_continuation_and_the_tree_consistent():
    tree = three().add_alternative(1, Message("assistant", "B2")).choose(1, 0)
    after = tree.delete(1)
    assert contents(after) == ["a", "c"]
    assert len(after.siblings(1)) == 2  # "c" took b's place beside B2
    for node in after.nodes.values():  # every child points back at its parent
        assert all(after.nodes[c].parent == node.id for c in node.children)


def test_role_edit_and_bad_indexes():
    tree = three().edit(2, role="assistant")
    assert tree.conversation().messages[2].role == "assistant"
    for bad in (lambda: tree.node_at(3), lambda: tree.insert(9, Message("user", "x")),
                lambda: Tree().delete(0)):
        with pytest.raises(CommandError):
            bad()


def test_round_trip_through_dict():
    tree = three().add_alternative(2, Message("user", "C2"), {"gen": 0, "mode": "impersonate"})
    again = Tree.from_dict(tree.to_dict())
    assert contents(again) == contents(tree) and again.nodes == tree.nodes
    assert again.path()[-1].meta == {"gen": 0, "mode": "impersonate"}
