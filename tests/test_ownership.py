"""State has owners, read from the source: a chat session is a few parts, each changed only
through its own module; no module writes another's attributes or reaches into private state."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
PARTS = {"engine", "settings", "trees", "transcript", "prefs", "io"}  # harness.chat.session.Session
SETTINGS_OWNER = "chat/commands/configure.py"  # turn settings are frozen: replaced whole, here only


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def _written(tree: ast.AST):
    """(target expression, line) of every assignment, augmented assignment and deletion."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = [e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        else:
            continue
        for target in targets:
            yield target, node.lineno


def test_a_session_is_only_its_parts_and_only_settings_are_replaced():
    from harness.chat.session import Session
    from harness.generation.workbench import Workbench
    from harness.prompt.templates import load_template
    from tests.support.guarded import GuardedBackend

    session = Session(Workbench(GuardedBackend(), load_template("chatml")))
    assert set(vars(session)) == PARTS
    wrong = []
    for name, tree in _modules():
        for target, line in _written(tree):
            while isinstance(target, ast.Subscript):
                target = target.value
            if not isinstance(target, ast.Attribute):
                continue
            chain = []
            node = target
            while isinstance(node, ast.Attribute):
                chain.append(node.attr)
                node = node.value
            if not isinstance(node, ast.Name) or node.id != "session":
                continue
            chain.reverse()
            if chain == ["settings"] and name == SETTINGS_OWNER:
                continue
            wrong.append(f"{name}:{line} writes session.{'.'.join(chain)}")
    assert wrong == []


def test_no_module_reaches_into_another_modules_private_state():
    """`x._name` only for names the same module defines: a part's state changes through its
    methods. Two modules reach into a library: the llama.cpp backend into llama-cpp-python, and
    the docs generator into argparse (which lists a parser's actions only privately)."""
    wrong = []
    for name, tree in _modules():
        if name in ("backends/llama_cpp.py", "cli/docs.py"):
            continue
        own = _private_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and node.attr not in own:
                wrong.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert wrong == []


def _private_names(tree: ast.AST) -> set[str]:
    """Private names a module defines: its functions, methods, classes and `self._x` attributes."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if n.startswith("_")}
