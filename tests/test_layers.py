"""The package's layering, read from the source: every import (module-level, inside functions and
under TYPE_CHECKING alike) points from a layer to the same or a lower one; no import cycles; at
most 12 modules at harness/ top level."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "harness"

# Lowest first. A module may import its own layer and any layer before it, never a later one.
LAYERS: list[tuple[str, ...]] = [
    ("harness.errors", "harness.paths", "harness.yamlio", "harness.interrupt", "harness.untrusted",
     "harness.atomic"),
    ("harness.stats",),
    ("harness.prompt",),
    ("harness.readers",),
    ("harness.backends",),
    ("harness.models",),
    ("harness.generation",),
    ("harness.lab", "harness.turn_log"),
    ("harness.experiment",),
    ("harness.report",),
    ("harness.chat",),
    ("harness.api", "harness.repl"),
    ("harness.cli", "harness.__main__"),
]
FACE = "harness"  # harness/__init__.py: the lazy public face, may name anything


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    out = set()
    for target in found:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target.startswith("harness") and target != name and target != FACE:
            out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer_of(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def test_every_module_has_a_layer():
    for name in MODULES:
        if name != FACE:
            layer_of(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != FACE))
def test_imports_point_down(name):
    mine = layer_of(name)
    upward = sorted(t for t in GRAPH[name] if layer_of(t) > mine)
    assert not upward, f"{name} (layer {mine}) imports a higher layer: {upward}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles({n: ts for n, ts in GRAPH.items() if n != FACE}) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_at_most_twelve_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top
