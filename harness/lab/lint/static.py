"""Lint's static pass: what a template *is*, read from its source and syntax tree, never rendered.

One failing render hides nothing here. Names are matched after constant folding
(:mod:`harness.lab.lint.folding`), so a dangerous name spelled in pieces is still that name. Each
finding carries the line and column of the construct (``Locator``). Codes (rows in
:mod:`harness.lab.lint.rules`):

  L101 Python internals or code-execution names     L107 reflection (|attr, map('attr'), getattr)
  L102 invisible or bidirectional characters        L108 include / import / extends / from
  L103 control characters                            L109 unknown filter or test
  L105 content-keyed branch writing its own text     L110 decode filter or method
  L106 embedded URLs                                 L111 instruction-like text it writes
                                                     L112 too large / deep / costly to analyse

The pass is bounded: sources over ``MAX_STATIC_CHARS`` are not parsed (L112), and folding stops
at its work limit (L112), so its time grows linearly with the source.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from jinja2 import nodes

from harness.lab.lint.findings import Finding
from harness.lab.lint.folding import Folder, Values
from harness.lab.lint.rules import rule
from harness.prompt.templates import ChatTemplate

MAX_STATIC_CHARS = 1_000_000  # as harness.prompt.templates.MAX_SOURCE_CHARS: what renders is checked
EXEC_NAMES = frozenset({"os", "sys", "subprocess", "popen", "eval", "exec", "__import__", "import_module",
                        "builtins", "__builtins__", "globals", "lipsum", "cycler", "joiner", "self",
                        "config", "request", "url_for", "get_flashed_messages", "mro", "func_globals",
                        "f_globals", "gi_frame", "cr_frame", "tb_frame"})
REFLECTION = frozenset({"getattr", "setattr", "delattr", "hasattr", "vars", "dir", "attrgetter",
                        "methodcaller", "itemgetter"})
_DECODE = re.compile(r"b64|base64|b32|base32|b16|base16|a85|b85|hex|rot_?13|unquote|url_?decode|decode|"
                     r"decompress|inflate|gunzip|zlib|atob|pickle|marshal|from_?bytes", re.I)
_ATTRIBUTE_ARGS = {"selectattr": 0, "rejectattr": 0, "groupby": 0}  # positional attribute names
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:(?:all|any|the|your|every|of|everything)\s+)*"
    r"(?:previous|prior|above|earlier|preceding|former|original|system|safety)\s+"
    r"(?:instructions?|prompts?|rules|guidelines|directions|directives|messages|context)"
    r"|\b(?:reveal|print|output|repeat|leak|disclose|dump|exfiltrate)\s+(?:(?:the|your|all|its)\s+)*"
    r"(?:system\s+prompt|hidden\s+(?:instructions?|prompt)|initial\s+(?:instructions?|prompt)|"
    r"secrets?|passwords?|api[\s_-]?keys?|credentials)"
    r"|\byou\s+are\s+now\s+(?:in\s+)?(?:dan\b|developer\s+mode|jailbroken|unrestricted|unfiltered|evil)"
    r"|\bdo\s+anything\s+now\b|\bjailbreak|\bdeveloper\s+mode\s+enabled"
    r"|\bwithout\s+(?:telling|informing|alerting|notifying)\s+the\s+user"
    r"|\b(?:send|exfiltrate|upload|post|forward)\b[^.\n]{0,80}?\bto\s+https?://", re.I)
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF,
              0x180E, 0x00AD, 0x034F}
_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x061C}
_URL_RE = re.compile(r"https?://[^\s'\"<>)}\]]+")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # as Jinja's lexer counts lines
_BLOCK_TAG = re.compile(r"\{%-?\s*(end)?generation\s*-?%\}")  # transformers' tag: same length blanks


def finding(code: str, message: str, where: tuple[int, int] | None = None, probe: str = "source") -> Finding:
    line, column = where if where else (None, None)
    return Finding(code, rule(code).severity, message, probe, line, column)


def hidden(ch: str) -> bool:
    """An invisible or bidirectional-control character (what L102 reports)."""
    code = ord(ch)
    return code in _INVISIBLE or code in _BIDI or 0xE0000 <= code <= 0xE007F


def dangerous(name: str) -> bool:
    return name.startswith("_") or name in EXEC_NAMES


def static_findings(t: ChatTemplate) -> list[Finding]:
    """Findings from the source alone (no render), in source order."""
    source = t.source
    if len(source) > MAX_STATIC_CHARS:
        return [finding("L112", f"{len(source):,} characters: over the static pass's {MAX_STATIC_CHARS:,}; "
                        "a chat template is a few kilobytes", (1, 1))]
    locate = Locator(source)
    out = [*_character_findings(source, locate), *_url_findings(source, locate)]
    try:
        from harness.prompt.sandbox import syntax_tree

        tree = syntax_tree(_BLOCK_TAG.sub(lambda m: " " * len(m.group()), source))
    except RecursionError:
        return [*out, finding("L112", "nested too deeply to parse", (1, 1))]
    except Exception:  # noqa: BLE001 - a syntax error is a render failure (L001), not a static finding
        return out
    try:
        folder = Folder().run(tree)
        out += TreeRules(folder, locate).findings(tree)
    except RecursionError:
        return [*out, finding("L112", "nested too deeply to analyse", (1, 1))]
    if folder.exhausted:
        out.append(finding("L112", f"constant folding stopped after {folder.steps:,} steps; names built "
                           "later in the template are unchecked", (1, 1)))
    return sorted(out, key=lambda f: (f.line or 0, f.column or 0))


class Locator:
    """Line and column (1-based) of constructs in the source; Jinja's nodes know only the line."""

    def __init__(self, source: str):
        self.source = source
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(source)]
        self._after: dict[tuple[int, str], int] = {}
        self._found: dict[tuple[int, str | None], tuple[int, int]] = {}

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def find(self, line: int, pattern: str | None, key: int = 0, lines: int = 20) -> tuple[int, int]:
        """The first match of `pattern` from `line` on, past earlier finds of the same pattern for
        other `key`s (one construct, one place: the same key and pattern give the same answer)."""
        if (key, pattern) not in self._found:
            self._found[(key, pattern)] = self._search(line, pattern, lines)
        return self._found[(key, pattern)]

    def _search(self, line: int, pattern: str | None, lines: int) -> tuple[int, int]:
        line = max(1, min(line, len(self.starts)))
        if pattern:
            start = max(self.starts[line - 1], self._after.get((line, pattern), 0))
            end = self.starts[min(line - 1 + lines, len(self.starts) - 1)] if line - 1 + lines < len(self.starts) \
                else len(self.source)
            found = re.compile(pattern).search(self.source, start, max(end, start))
            if found:
                self._after[(line, pattern)] = found.end()
                return self.position(found.start(found.lastindex or 0))
        text = self.source[self.starts[line - 1]:]
        return line, len(text) - len(text.lstrip(" \t")) + 1


def _character_findings(source: str, locate: Locator) -> list[Finding]:
    found: dict[str, list[str]] = {"L102": [], "L103": []}
    first: dict[str, int] = {}
    for ch in dict.fromkeys(source):
        code = ord(ch)
        if hidden(ch):
            kind = "L102"
        elif unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
            kind = "L103"
        else:
            continue
        found[kind].append(f"U+{code:04X} {unicodedata.name(ch, '')}".rstrip())
        first[kind] = min(first.get(kind, len(source)), source.index(ch))
    what = {"L102": "invisible or bidirectional characters in the source: ",
            "L103": "control characters in the source: "}
    return [finding(kind, what[kind] + ", ".join(chars), locate.position(first[kind]))
            for kind, chars in found.items() if chars]


def _url_findings(source: str, locate: Locator) -> list[Finding]:
    seen: dict[str, int] = {}
    for match in _URL_RE.finditer(source):
        seen.setdefault(match.group(), match.start())
    return [finding("L106", f"embedded URL {url}", locate.position(at)) for url, at in seen.items()]


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.iter_child_nodes())


class TreeRules:
    """The syntax-tree rules, reading folded values from a :class:`Folder` that has run."""

    def __init__(self, folder: Folder, locate: Locator):
        from harness.prompt.sandbox import known_filters_and_tests

        self.folder, self.locate = folder, locate
        self.filters, self.tests = known_filters_and_tests()
        self.out: list[Finding] = []

    def findings(self, tree: nodes.Template) -> list[Finding]:
        for node in _walk(tree):
            check = getattr(self, f"check_{type(node).__name__.lower()}", None)
            if check is not None:
                check(node)
        return self.out

    def add(self, code: str, message: str, node: nodes.Node, pattern: str | None) -> None:
        self.out.append(finding(code, message, self.locate.find(node.lineno, pattern, id(node))))

    def strings(self, node: nodes.Node | None) -> tuple[list[str], bool]:
        """(the strings `node` can be, whether folding was needed to know them)."""
        if node is None:
            return [], False
        if isinstance(node, nodes.Const):
            return ([node.value] if isinstance(node.value, str) else []), False
        values = self.folder.values(node) or Values()
        return values.strings(), True

    def names(self, node: nodes.Node, names: list[str], folded: bool, how: str, pattern: str | None) -> None:
        for name in names:
            parts = [p for p in re.split(r"[.\[\]]", name) if p]
            for part in dict.fromkeys(p for p in parts if dangerous(p)):
                built = " (built from constants)" if folded else ""
                self.add("L101", f"reaches for {part!r} through {how}{built}", node, pattern)

    # --- one method per node type -------------------------------------------------------------

    def check_getattr(self, node: nodes.Getattr) -> None:
        if dangerous(node.attr):
            self.add("L101", f"reaches for {node.attr!r} as an attribute", node, rf"\.\s*{re.escape(node.attr)}\b")

    def check_getitem(self, node: nodes.Getitem) -> None:
        if isinstance(node.arg, nodes.Slice):
            return
        names, folded = self.strings(node.arg)
        leaf = _leaf_pattern(node.arg)
        pattern = rf"\[\s*({leaf})" if leaf else None
        self.names(node, names, folded, "a subscript", pattern)
        values = self.folder.values(node.arg)
        if folded and values is not None and values.overflow:
            self.add("L107", "a subscript built from constants in too many ways to fold", node, pattern)

    def check_name(self, node: nodes.Name) -> None:
        if node.name in EXEC_NAMES:
            self.add("L101", f"names {node.name!r}", node, rf"\b{re.escape(node.name)}\b")

    def check_filter(self, node: nodes.Filter) -> None:
        pattern = rf"\|\s*({re.escape(node.name)})\b"
        if node.name == "attr":
            names, folded = self.strings(node.args[0] if node.args else None)
            self.add("L107", f"|attr({', '.join(map(repr, names)) or '...'}) picks an attribute by name",
                     node, pattern)
            self.names(node, names, folded, "|attr", pattern)
        elif node.name in ("map", "select", "reject") and node.args:
            self.applied(node, pattern)
        elif node.name not in self.filters:
            self.unknown(node, node.name, "filter", pattern)
        for kw in node.kwargs:
            if kw.key == "attribute":
                names, folded = self.strings(kw.value)
                self.names(node, names, folded, f"|{node.name}(attribute=...)", pattern)
        if node.name in _ATTRIBUTE_ARGS and node.args:
            names, folded = self.strings(node.args[_ATTRIBUTE_ARGS[node.name]])
            self.names(node, names, folded, f"|{node.name}", pattern)

    def applied(self, node: nodes.Filter, pattern: str) -> None:
        """``map('attr', name)``, ``map('b64decode')``, ``select('some_test')``."""
        names, folded = self.strings(node.args[0])
        known = self.filters if node.name == "map" else self.tests
        for name in names:
            if node.name == "map" and name == "attr":
                attrs, attr_folded = self.strings(node.args[1] if len(node.args) > 1 else None)
                self.add("L107", f"map('attr', {', '.join(map(repr, attrs)) or '...'}) picks attributes by name",
                         node, pattern)
                self.names(node, attrs, folded or attr_folded, "map('attr', ...)", pattern)
            elif name not in known:
                self.unknown(node, name, "filter" if node.name == "map" else "test", pattern)

    def unknown(self, node: nodes.Node, name: str, kind: str, pattern: str) -> None:
        if _DECODE.search(name):
            self.add("L110", f"{kind} {name!r} decodes text at render time", node, pattern)
        else:
            self.add("L109", f"no engine provides the {kind} {name!r}", node, pattern)

    def check_test(self, node: nodes.Test) -> None:
        if node.name not in self.tests:
            self.unknown(node, node.name, "test", rf"\bis\s+(?:not\s+)?({re.escape(node.name)})\b")

    def check_call(self, node: nodes.Call) -> None:
        callee = node.node
        if isinstance(callee, nodes.Getattr) and callee.attr == "format":
            formats, folded = self.strings(callee.node)
            for fmt in formats:
                fields = re.findall(r"\{([^{}:!]*)", fmt)
                self.names(node, fields, folded, "a format string field", r"\.\s*format\b")
        elif isinstance(callee, nodes.Getattr) and _DECODE.search(callee.attr):
            self.add("L110", f"calls .{callee.attr}(), which decodes text at render time", node,
                     rf"\.\s*({re.escape(callee.attr)})\b")
        elif isinstance(callee, nodes.Name) and callee.name in REFLECTION:
            self.add("L107", f"calls {callee.name}(), which picks attributes by name", node,
                     rf"\b{callee.name}\b")
            for arg in node.args[1:2]:
                names, folded = self.strings(arg)
                self.names(node, names, folded, f"{callee.name}()", rf"\b{callee.name}\b")

    def check_include(self, node: nodes.Include) -> None:
        self.loads(node, "include")

    def check_import(self, node: nodes.Import) -> None:
        self.loads(node, "import")

    def check_fromimport(self, node: nodes.FromImport) -> None:
        self.loads(node, "from")

    def check_extends(self, node: nodes.Extends) -> None:
        self.loads(node, "extends")

    def loads(self, node: nodes.Node, keyword: str) -> None:
        names, _ = self.strings(node.template)
        shown = ", ".join(map(repr, names)) or "a name computed at render time"
        self.add("L108", f"{{% {keyword} %}} loads another template ({shown})", node,
                 rf"\{{%[-+]?\s*({keyword})\b")

    def check_output(self, node: nodes.Output) -> None:
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                for match in _INSTRUCTION.finditer(child.data):
                    pattern = r"\s+".join(re.escape(w) for w in match.group().split())
                    self.add("L111", f"writes {_quote(match.group())} into the prompt", child, pattern)
                continue
            texts, folded = self.strings(child)
            for text in texts:
                for match in _INSTRUCTION.finditer(text):
                    built = " (built from constants)" if folded and not isinstance(child, nodes.Const) else ""
                    leaf = _leaf_pattern(child)
                    self.add("L111", f"writes {_quote(match.group())} into the prompt{built}", child,
                             f"({leaf})" if leaf else None)

    def check_if(self, node: nodes.If) -> None:
        if _keys_on_content(node.test) and _writes_text(node.body):
            self.add("L105", "branches on words in message content and writes text of its own (an instruction "
                     "injected when a user says them)", node, r"\{%[-+]?\s*(?:el)?(if)\b")


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _leaf_pattern(node: nodes.Node) -> str | None:
    """A pattern for the first constant or name of `node` as written in the source."""
    stack = [node]
    while stack:
        current = stack.pop(0)
        if isinstance(current, nodes.Const) and isinstance(current.value, str) and current.value:
            head = current.value[:20]
            if head.isprintable() and "\\" not in head and "'" not in head and '"' not in head:
                return rf"['\"]{re.escape(head)}"
        if isinstance(current, nodes.Name):
            return rf"\b{re.escape(current.name)}\b"
        stack[:0] = list(current.iter_child_nodes())
    return None


def _keys_on_content(test: Any) -> bool:
    """A comparison of a string constant with something named ``content`` (``'x' in m.content``)."""
    for node in _walk(test):
        if isinstance(node, nodes.Compare) and isinstance(node.expr, nodes.Const) \
                and isinstance(node.expr.value, str) and node.expr.value.strip():
            for operand in node.ops:
                if any(_names_content(n) for n in _walk(operand.expr)):
                    return True
    return False


def _names_content(node: Any) -> bool:
    return (isinstance(node, nodes.Getattr) and node.attr == "content") or \
        (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and node.arg.value == "content") or \
        (isinstance(node, nodes.Name) and node.name == "content")


def _writes_text(body: list[Any]) -> bool:
    for stmt in body:
        for node in _walk(stmt):
            if isinstance(node, nodes.TemplateData) and len(node.data.strip()) > 20:
                return True
            if isinstance(node, nodes.Output) and any(
                    isinstance(c, nodes.Const) and isinstance(c.value, str) and len(c.value.strip()) > 20
                    for c in node.nodes):
                return True
    return False
