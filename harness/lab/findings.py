"""A lint finding: a stable code, a severity, one line, and the probes it came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # "error" | "warning" | "info"
    message: str
    probe: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def deduplicated(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per (code, severity, message), naming every probe it came from."""
    merged: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        key = (f.code, f.severity, f.message)
        if key not in merged:
            merged[key] = f
        elif f.probe and f.probe not in merged[key].probe.split(", "):
            merged[key] = replace(merged[key], probe=", ".join(p for p in (merged[key].probe, f.probe) if p))
    return list(merged.values())
