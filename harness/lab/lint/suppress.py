"""Lint suppressions: the ``.harness-lint-ignore`` file, where every entry must say why.

One entry a line, ``#`` starts a comment line::

    # CODE  PATH[:LINE]                 REASON (required)
    L109    templates/deepseek-*.jinja  from_json is provided by the serving engine (vLLM)
    L111    tests/evil.jinja:3          planted on purpose: the lint test's fixture

PATH is a glob matched against the linted file's path relative to the ignore file's folder
(``*`` does not cross ``/``; ``**`` does). A suppressed finding is not counted towards the exit
code; SARIF carries it with its justification, so code scanning shows it as dismissed.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from harness.errors import CommandError
from harness.lab.lint.findings import Finding
from harness.lab.lint.rules import RULES

DEFAULT_NAME = ".harness-lint-ignore"
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Entry:
    code: str
    pattern: str
    line: int | None
    reason: str
    where: str  # file:line of the entry

    def matches(self, path: str, finding: Finding) -> bool:
        if finding.code != self.code or (self.line is not None and finding.line != self.line):
            return False
        return _glob(self.pattern).fullmatch(path) is not None


@dataclass(frozen=True)
class Suppressions:
    root: Path
    entries: tuple[Entry, ...] = ()

    def reason(self, file: str, finding: Finding) -> str | None:
        """The reason `finding` in `file` is suppressed, or None."""
        if not self.entries:
            return None
        try:
            path = Path(os.path.abspath(file)).relative_to(self.root).as_posix()
        except ValueError:
            path = PurePosixPath(file).as_posix()
        return next((e.reason for e in self.entries if e.matches(path, finding)), None)


def _glob(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    regex = "".join(".*" if p.startswith("**") else "[^/]*" if p == "*" else "[^/]" if p == "?" else re.escape(p)
                    for p in parts)
    return re.compile(regex)


def load_suppressions(path: str | None) -> Suppressions:
    """The given ignore file (an error if missing), or ``./.harness-lint-ignore`` if there is one."""
    if path is None:
        if not Path(DEFAULT_NAME).is_file():
            return Suppressions(Path.cwd())
        path = DEFAULT_NAME
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
                raise CommandError(f"not a regular file of at most {MAX_BYTES:,} bytes", where=path)
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read the ignore file: {exc.strerror or exc}", where=path) from None
    except UnicodeDecodeError:
        raise CommandError("the ignore file is not UTF-8 text", where=path) from None
    return Suppressions(Path(os.path.abspath(path)).parent, tuple(parse_entries(text, path)))


def parse_entries(text: str, path: str) -> list[Entry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[2].strip():
            raise CommandError("an entry needs CODE PATH REASON: the reason is required", where=where,
                               hint="say why this finding is acceptable")
        code, target, reason = parts
        if code not in RULES:
            raise CommandError(f"unknown rule {code!r}", where=where, hint="codes are L001-L015, L101-L112, L201-L203")
        pattern, _, at = target.rpartition(":") if re.search(r":\d+$", target) else (target, "", "")
        entries.append(Entry(code, pattern, int(at) if at else None, reason.strip(), where))
    return entries
