"""What a saved session file must hold before any of it is restored.

A session file is shared like any document, so it is data: every field harness restores is
checked for shape, type and bounds here, and the tree for being a tree (each node listed by its
parent, every chosen child one of its children, no node reachable twice), so a cycle cannot make
the path endless and a wrong type cannot surface later in /set or /tokens. Failures are one
StorageError naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import HarnessError, MessagesError, StorageError
from harness.generation.settings import BY_NAME, coerce
from harness.prompt.conversation import Conversation
from harness.untrusted import check_text

MAX_NODES = 1_000_000


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_session(data: Mapping[str, Any], where: str) -> None:
    def fail(field: str, problem: str) -> StorageError:
        return StorageError(f"the session file is damaged: '{field}' {problem}", where=where,
                            hint="restore it from a copy, or start without --resume")

    check_text(data, error=StorageError, where=where, what="the session")
    _check_tree(data.get("tree"), fail)
    messages = data.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise fail("messages", "is not a list of messages")
    generations = data.get("generations", [])
    if not isinstance(generations, list):
        raise fail("generations", "is not a list")
    for i, gen in enumerate(generations):
        _check_generation(gen, f"generations[{i}]", fail)
    settings = data.get("settings") or {}
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        raise fail("settings", "is not a mapping of setting names")
    for name, value in settings.items():
        # a value of the wrong type is damage; one a setting no longer takes (an old negative
        # seed, a setting since removed) resumes at its default with a notice
        # (harness.chat.saved.restore_settings)
        if name in BY_NAME:
            try:
                coerce(name, value)
            except HarnessError as exc:
                raise fail(f"settings.{exc.field}", f"is wrong: {exc.message}") from None
    ui = data.get("ui") or {}
    if not isinstance(ui, dict) or not all(isinstance(v, bool) for v in ui.values()):
        raise fail("ui", "is not a mapping of on/off switches")
    for key in ("profile", "log", "id", "model_spec", "template_spec"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise fail(key, "is not a string")


def _check_generation(gen: Any, field: str, fail) -> None:
    if not isinstance(gen, dict):
        raise fail(field, "is not a mapping")
    for key in ("mode", "text", "stop_reason"):
        if key in gen and not isinstance(gen[key], str):
            raise fail(f"{field}.{key}", "is not a string")
    for key in ("seconds", "prompt_seconds"):
        if key in gen and not _num(gen[key]):
            raise fail(f"{field}.{key}", "is not a number")
    tokens = gen.get("tokens", [])
    if not isinstance(tokens, list):
        raise fail(f"{field}.tokens", "is not a list")
    for k, token in enumerate(tokens):
        if not _token_ok(token):
            raise fail(f"{field}.tokens[{k}]", "is not [id, piece, role(, statistics)]")


def _token_ok(token: Any) -> bool:
    if not isinstance(token, list) or len(token) not in (3, 8):
        return False
    if not (_int(token[0]) and isinstance(token[1], str) and isinstance(token[2], str)):
        return False
    if len(token) == 3:
        return True
    return (all(_num(x) for x in token[3:6]) and isinstance(token[6], list) and isinstance(token[7], list)
            and all(_int(x) for x in token[6]) and all(_num(x) for x in token[7])
            and len(token[6]) == len(token[7]))


def _check_tree(tree: Any, fail) -> None:
    if not isinstance(tree, dict) or not isinstance(tree.get("nodes"), list):
        raise fail("tree", "is not a mapping with a 'nodes' list")
    items = tree["nodes"]
    if len(items) > MAX_NODES:
        raise fail("tree.nodes", f"has more than {MAX_NODES:,} nodes")
    nodes: dict[int, dict[str, Any]] = {}
    for i, node in enumerate(items):
        field = f"tree.nodes[{i}]"
        if not isinstance(node, dict) or not _int(node.get("id")) or node["id"] < 0:
            raise fail(field, "is not a node with an integer id")
        if node["id"] in nodes:
            raise fail(field, f"repeats id {node['id']}")
        children = node.get("children") or []
        if not isinstance(children, list) or not all(_int(c) for c in children):
            raise fail(f"{field}.children", "is not a list of node ids")
        for key in ("parent", "chosen"):
            if node.get(key) is not None and not _int(node[key]):
                raise fail(f"{field}.{key}", "is not a node id")
        if node.get("chosen") is not None and node["chosen"] not in children:
            raise fail(f"{field}.chosen", "is not one of the node's children")
        if not isinstance(node.get("meta") or {}, dict):
            raise fail(f"{field}.meta", "is not a mapping")
        if (node["id"] == 0) != (node.get("message") is None):
            raise fail(f"{field}.message", "must be absent for the root and a message elsewhere")
        if node.get("message") is not None:
            try:
                Conversation.from_dicts([node["message"]])
            except MessagesError as exc:
                raise fail(f"{field}.message", f"is not a message: {exc.message}") from None
        nodes[node["id"]] = node
    if 0 not in nodes or nodes[0].get("parent") is not None:
        raise fail("tree", "has no root node (id 0, no parent)")
    if not _int(tree.get("next_id", 1)) or tree.get("next_id", 1) <= max(nodes):
        raise fail("tree.next_id", "is not above every node id")
    seen: set[int] = set()
    stack = [0]
    while stack:  # every node once, each listed by the parent it names: a tree, no cycle
        current = stack.pop()
        if current in seen:
            raise fail("tree", f"reaches node {current} twice (a cycle or a shared child)")
        seen.add(current)
        for child in nodes[current].get("children") or []:
            if child not in nodes or nodes[child].get("parent") != current:
                raise fail("tree", f"node {current} lists child {child}, which does not name it as parent")
            stack.append(child)
