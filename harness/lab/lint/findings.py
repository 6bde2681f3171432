"""A lint finding: a stable code, a severity, one line, the probes it came from and, when the
source says where, its line and column (1-based; the column counts characters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.lab.lint.rules import rule


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "error" | "warning" | "info"
    message: str
    probe: str = ""
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        known = rule(self.code)
        return {"code": self.code, "severity": self.severity, "message": self.message, "probe": self.probe,
                "line": self.line, "column": self.column, "cwe": known.cwe_id, "why": known.why}


def deduplicated(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per (code, severity, message, place), naming every probe it came from."""
    merged: dict[tuple[Any, ...], Finding] = {}
    for f in findings:
        key = (f.code, f.severity, f.message, f.line, f.column)
        if key not in merged:
            merged[key] = f
        elif f.probe and f.probe not in merged[key].probe.split(", "):
            merged[key] = replace(merged[key], probe=", ".join(p for p in (merged[key].probe, f.probe) if p))
    return list(merged.values())
