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
