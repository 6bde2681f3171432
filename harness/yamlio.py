"""YAML parse errors as `file:line` locations people can jump to."""

from __future__ import annotations


def error_location(exc: Exception, where: str) -> tuple[str, str]:
    """(file:line, problem) for a yaml.YAMLError; points at the construct left open when the
    parser only noticed at the end of the file."""
    problem = str(getattr(exc, "problem", None) or "not valid YAML")
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    if context is not None and (mark is None or "<stream end>" in problem):
        mark = context
        problem = f"{getattr(exc, 'context', None) or 'unclosed construct'}: {problem}"
    return (f"{where}:{mark.line + 1}" if mark is not None else where), problem


def field_lines(node, prefix: str = "") -> dict[str, int]:
    """Field path -> 1-based line, for every key and list item of a composed YAML node.

    Paths read like the schema errors name them: ``models[1].templates[0]``, ``sampling.hot.top_k``.
    """
    import yaml

    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}.{key.value}" if prefix else str(key.value)
            out[path] = key.start_mark.line + 1
            out.update(field_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            out[path] = item.start_mark.line + 1
            out.update(field_lines(item, path))
    return out
