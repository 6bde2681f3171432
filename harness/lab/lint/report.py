"""Lint results as text, JSON or SARIF 2.1.0, their summary, and the exit code they earn.

Pure: builds lines and documents, prints nothing (the CLI prints, through the terminal rule).

- text: ``PLACE:LINE:COL: CODE severity: message [probes]`` a finding, then one ``CODE (CWE): why``
  line per rule seen, the capabilities of each template they were computed for, one summary line.
- JSON: ``{"templates": [...], "summary": {...}, "rules": {...}}``.
- SARIF 2.1.0 (what GitHub code scanning reads): ``tool.driver`` with every rule (CWE tags,
  ``security-severity`` for the security ones), one result per finding with ``ruleId``,
  ``level``, ``message`` and a ``physicalLocation`` (``artifactLocation.uri``, ``region.startLine``/
  ``startColumn``; columns count code points). A template embedded in a GGUF points at the .gguf
  (line 1) and names its metadata key as a logical location, its own line in the message.
  Suppressed findings are results with an external ``suppressions`` entry and its reason.

Exit codes: 0 when no unsuppressed finding is at or above ``fail_on``, else 1 (2, bad usage, is
the CLI's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.lab.lint.files import Linted
from harness.lab.lint.findings import Finding
from harness.lab.lint.rules import RULES, SEVERITIES, at_least

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_SECURITY_SEVERITY = {"error": "8.0", "warning": "5.0", "info": "2.0"}


def counts(results: Sequence[Linted]) -> dict[str, int]:
    found = [f for r in results for f in r.findings]
    return {"templates": sum(1 for r in results if r.key != "tokenizer.ggml"),
            "files": len({r.file or r.template for r in results}),
            **{s: sum(f.severity == s for f in found) for s in SEVERITIES},
            "suppressed": sum(len(r.suppressed) for r in results)}


def exit_code(results: Sequence[Linted], fail_on: str) -> int:
    return 1 if any(at_least(f.severity, fail_on) for r in results for f in r.findings) else 0


def summary_line(results: Sequence[Linted]) -> str:
    n = counts(results)
    line = (f"{n['templates']} template(s) in {n['files']} file(s): {n['error']} error(s), "
            f"{n['warning']} warning(s), {n['info']} note(s)")
    return line + (f", {n['suppressed']} suppressed" if n["suppressed"] else "")


def _place(result: Linted) -> str:
    if result.key and result.file:
        return f"{_relative(result.file)}[{result.key}]"
    return _relative(result.file) if result.file else result.template


def text_lines(results: Sequence[Linted]) -> list[str]:
    """The text report (raw: the caller makes each line safe for a terminal)."""
    lines = []
    for r in results:
        place = _place(r)
        if r.note:
            lines.append(f"{place}: {r.note}")
        for f in r.findings:
            at = f":{f.line}:{f.column or 1}" if f.line else ""
            probe = f" [{f.probe}]" if f.probe and f.probe != "source" else ""
            lines.append(f"{place}{at}: {f.code} {f.severity}: {f.message}{probe}")
    seen = sorted({f.code for r in results for f in r.findings})
    lines += [f"{code}{f' ({RULES[code].cwe_id})' if RULES[code].cwe else ''}: {RULES[code].why}" for code in seen]
    lines += [f"{_place(r)}: capabilities: " + ", ".join(f"{k}={v}" for k, v in r.capabilities.items())
              for r in results if r.capabilities is not None]
    lines.append(summary_line(results))
    return lines


def to_json(results: Sequence[Linted]) -> dict[str, Any]:
    seen = sorted({f.code for r in results for f in [*r.findings, *(s for s, _ in r.suppressed)]})
    return {"templates": [{"file": r.file, "template": r.template, "key": r.key, "note": r.note or None,
                           "findings": [f.to_dict() for f in r.findings],
                           "suppressed": [{**f.to_dict(), "reason": why} for f, why in r.suppressed],
                           "markers": r.markers, "capabilities": r.capabilities} for r in results],
            "summary": counts(results),
            "rules": {code: {"severity": RULES[code].severity, "cwe": RULES[code].cwe_id, "why": RULES[code].why}
                      for code in seen}}


def to_sarif(results: Sequence[Linted], version: str) -> dict[str, Any]:
    codes = list(RULES)
    sarif_results = []
    for r in results:
        sarif_results += [_sarif_result(r, f, codes, None) for f in r.findings]
        sarif_results += [_sarif_result(r, f, codes, why) for f, why in r.suppressed]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "harness-lint", "version": version,
                                          "rules": [_sarif_rule(code) for code in codes]}},
                      "columnKind": "unicodeCodePoints",
                      "invocations": [{"executionSuccessful": True}],
                      "results": sarif_results}]}


def _sarif_rule(code: str) -> dict[str, Any]:
    known = RULES[code]
    tags = ["security", f"external/cwe/cwe-{known.cwe}"] if known.cwe else ["correctness"]
    properties: dict[str, Any] = {"tags": tags}
    if known.cwe:
        properties["security-severity"] = _SECURITY_SEVERITY[known.severity]
    return {"id": code, "name": known.title,
            "shortDescription": {"text": known.title.replace("-", " ")},
            "fullDescription": {"text": known.why}, "help": {"text": known.why},
            "defaultConfiguration": {"level": _LEVEL[known.severity]}, "properties": properties}


def _sarif_result(r: Linted, f: Finding, codes: list[str], suppressed: str | None) -> dict[str, Any]:
    embedded = bool(r.key and r.file)
    message = f.message + (f" [{f.probe}]" if f.probe and f.probe != "source" else "")
    if embedded and f.line:
        message += f" (line {f.line}, column {f.column or 1} of {r.key})"
    region = {"startLine": f.line, "startColumn": f.column or 1} if f.line and not embedded \
        else {"startLine": 1, "startColumn": 1}
    location: dict[str, Any] = {"physicalLocation": {"artifactLocation": {"uri": _uri(r.file or r.template)},
                                                     "region": region}}
    if r.key:
        location["logicalLocations"] = [{"fullyQualifiedName": r.key, "kind": "member"}]
    out = {"ruleId": f.code, "ruleIndex": codes.index(f.code), "level": _LEVEL[f.severity],
           "message": {"text": message}, "locations": [location]}
    if suppressed is not None:
        out["suppressions"] = [{"kind": "external", "justification": suppressed}]
    return out


def _relative(path: str) -> str:
    """`path` relative to the working directory when under it, else as given."""
    try:
        return Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path


def _uri(path: str) -> str:
    """A path relative to the working directory when under it (as code scanning wants), else a file URI."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_uri()
