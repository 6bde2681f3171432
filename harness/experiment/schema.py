"""Strict field checks for experiment files: every failure names the file, the line and the
field's path (``file:line: field 'sampling.hot.temprature': unknown field (...)``)."""

from __future__ import annotations

from typing import Any

from harness.errors import ExperimentError


class Schema:
    """Field checks that fail with the file, the line and the field's path."""

    def __init__(self, where: str, lines: dict[str, int]):
        self.where = where
        self.lines = lines

    def fail(self, path: str, message: str) -> ExperimentError:
        line = self.lines.get(path)
        return ExperimentError(f"field '{path}': {message}",
                               where=f"{self.where}:{line}" if line else self.where,
                               hint="fix or remove the field")

    def fields(self, data: Any, path: str, known: dict[str, tuple[type, ...]]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a mapping with fields {', '.join(known)}")
        for key, value in data.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in known:
                raise self.fail(sub, f"unknown field (known: {', '.join(known)})")
            self.check(value, known[key], sub)
        return data

    def check(self, value: Any, types: tuple[type, ...], path: str) -> Any:
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise self.fail(path, f"expected {_kind(types)}, got {value!r}")
        return value

    def items(self, data: dict[str, Any], key: str, types: tuple[type, ...], default: list[Any]) -> list[Any]:
        values = data.get(key, default)
        if not values:
            raise self.fail(key, "must not be empty")
        for i, value in enumerate(values):
            self.check(value, types, f"{key}[{i}]")
        if len(set(map(str, values))) != len(values):
            raise self.fail(key, "lists the same value twice")
        return values


def _kind(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null", bool: "a boolean"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


