"""Lint's static pass and capability report: what a template *is*, before and beside rendering.

The static pass reads the source and its Jinja syntax tree without rendering it, so one failing
render does not hide the rest:

  L101 error    attribute/dunder access or code-execution names (what the sandbox blocks): a
                security finding, whatever a render would do
  L102 warning  invisible or bidirectional characters (zero-width, tag characters, Trojan Source)
  L103 warning  control characters
  L104 warning  date-gated output: rendering with ``strftime_now`` pinned to other dates changes
                more than the date it prints
  L105 warning  a branch keyed on message content that writes text of its own (an injected
                instruction when the user says a word)
  L106 info     URLs embedded in the template

The capability report (as minja's caps and llama.cpp's ``chat_template_caps``) renders small
probes: system role, tools, tool calls, tool results, content parts, reasoning,
``continue_final_message`` and ``add_generation_prompt``, each ``yes``, ``drops`` (renders but the
probe's text is missing) or ``raises``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from harness.errors import HarnessError, TemplateError
from harness.lab.findings import Finding
from harness.prompt.templates import ChatTemplate

_EXEC_NAMES = frozenset({"os", "sys", "subprocess", "popen", "eval", "exec", "__import__", "import_module",
                         "builtins", "__builtins__", "globals", "lipsum", "cycler", "joiner", "self",
                         "config", "request", "url_for", "get_flashed_messages", "mro", "func_globals",
                         "f_globals", "gi_frame", "cr_frame", "tb_frame"})
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF,
              0x180E, 0x00AD, 0x034F}
_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x061C}
_URL_RE = re.compile(r"https?://[^\s'\"<>)}\]]+")
DATES = ("2024-01-01", "2025-06-15", "2026-12-31", "2031-02-28")


def static_findings(t: ChatTemplate) -> list[Finding]:
    """Findings from the source alone (no render)."""
    out = [*_character_findings(t.source), *_url_findings(t.source)]
    tree = _parse(t)
    if tree is not None:
        out += _tree_findings(tree)
    return out


def _parse(t: ChatTemplate) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"])
    source = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", t.source)  # transformers' block tag
    try:
        return env.parse(source)
    except Exception:  # a syntax error is a render failure (L001), not a static finding
        return None


def _character_findings(source: str) -> list[Finding]:
    out = []
    found: dict[str, list[str]] = {"L102": [], "L103": []}
    for ch in dict.fromkeys(source):
        code = ord(ch)
        name = unicodedata.name(ch, f"U+{code:04X}")
        if code in _INVISIBLE or code in _BIDI or 0xE0000 <= code <= 0xE007F:
            found["L102"].append(f"U+{code:04X} {name}")
        elif unicodedata.category(ch) == "Cc" and ch not in "\t\n\r":
            found["L103"].append(f"U+{code:04X}")
    if found["L102"]:
        out.append(Finding("L102", "warning", "invisible or bidirectional characters in the source: "
                           + ", ".join(found["L102"]), "source"))
    if found["L103"]:
        out.append(Finding("L103", "warning", "control characters in the source: " + ", ".join(found["L103"]),
                           "source"))
    return out


def _url_findings(source: str) -> list[Finding]:
    urls = list(dict.fromkeys(_URL_RE.findall(source)))
    if not urls:
        return []
    return [Finding("L106", "info", "embedded URL(s): " + ", ".join(urls[:5]) +
                    (f" and {len(urls) - 5} more" if len(urls) > 5 else ""), "source")]


def _tree_findings(tree: Any) -> list[Finding]:
    from jinja2 import nodes

    unsafe: list[str] = []
    keyed: list[str] = []
    for node in _walk(tree):
        attr = None
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attr = node.arg.value
        elif isinstance(node, nodes.Name) and node.name in _EXEC_NAMES:
            attr = node.name
        if attr is not None and (attr.startswith("_") or attr in _EXEC_NAMES):
            unsafe.append(f"{attr} (line {node.lineno})")
        if isinstance(node, nodes.If) and _keys_on_content(node.test) and _writes_text(node.body):
            keyed.append(f"line {node.lineno}")
    out = []
    if unsafe:
        out.append(Finding("L101", "error", "reaches for Python internals or code execution (the sandbox "
                           "blocks it; treat the template as hostile): " + ", ".join(dict.fromkeys(unsafe)),
                           "source"))
    if keyed:
        out.append(Finding("L105", "warning", "branches on words in message content and writes text of its "
                           "own (an instruction injected when a user says them): " + ", ".join(keyed),
                           "source"))
    return out


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.iter_child_nodes())


def _keys_on_content(test: Any) -> bool:
    """A comparison of a string constant with something named ``content`` (``'x' in m.content``)."""
    from jinja2 import nodes

    for node in _walk(test):
        if isinstance(node, nodes.Compare) and isinstance(node.expr, nodes.Const) \
                and isinstance(node.expr.value, str) and node.expr.value.strip():
            for operand in node.ops:
                if any(_names_content(n) for n in _walk(operand.expr)):
                    return True
    return False


def _names_content(node: Any) -> bool:
    from jinja2 import nodes

    return (isinstance(node, nodes.Getattr) and node.attr == "content") or \
        (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and node.arg.value == "content") or \
        (isinstance(node, nodes.Name) and node.name == "content")


def _writes_text(body: list[Any]) -> bool:
    from jinja2 import nodes

    for stmt in body:
        for node in _walk(stmt):
            if isinstance(node, nodes.TemplateData) and len(node.data.strip()) > 20:
                return True
            if isinstance(node, nodes.Output) and any(
                    isinstance(c, nodes.Const) and isinstance(c.value, str) and len(c.value.strip()) > 20
                    for c in node.nodes):
                return True
    return False


# --- rendered checks -----------------------------------------------------------------------------

_DATE_PROBE = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def date_findings(t: ChatTemplate, variables: Mapping[str, Any]) -> list[Finding]:
    """L104: renders at several pinned dates that differ by more than the dates they print."""
    if "strftime_now" not in t.source:
        return []
    shapes = {}
    for day in DATES:
        try:
            text = t.pinned(day).render(_DATE_PROBE, add_generation_prompt=True, variables=variables)
        except TemplateError:
            return []
        shapes[day] = re.sub(r"\d+", "0", _without_dates(text, day))
    if len(set(shapes.values())) > 1:
        return [Finding("L104", "warning", "output depends on the date beyond printing it (rendered at "
                        + ", ".join(DATES) + ")", "strftime_now")]
    return []


def _without_dates(text: str, day: str) -> str:
    from datetime import datetime

    when = datetime.fromisoformat(day)
    for fmt in ("%d %B %Y", "%d %b %Y", "%B %d, %Y", "%Y-%m-%d", "%A", "%B", "%b", "%a"):
        text = text.replace(when.strftime(fmt), "")
    return text


S0, S1 = "\ue000c0\ue001", "\ue000c1\ue001"
_TOOL = {"type": "function", "function": {"name": "probe_tool_" + "xq", "description": "d",
                                          "parameters": {"type": "object", "properties": {}}}}
_CALL = {"type": "function", "function": {"name": "probe_call_xq", "arguments": {"k": "v"}}}
CAPABILITY_PROBES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], str]] = {
    "system_role": ([{"role": "system", "content": S0}, {"role": "user", "content": "hi"}], {}, S0),
    "tools": ([{"role": "user", "content": "hi"}], {"tools": [_TOOL]}, "probe_tool_xq"),
    "tool_calls": ([{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "tool_calls": [_CALL]}], {}, "probe_call_xq"),
    "tool_results": ([{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "", "tool_calls": [_CALL]},
                      {"role": "tool", "tool_call_id": "c", "name": "probe_call_xq", "content": S0}], {}, S0),
    "content_parts": ([{"role": "user", "content": [{"type": "text", "text": S0}]}], {}, S0),
    "reasoning": ([{"role": "user", "content": "hi"},
                   {"role": "assistant", "reasoning_content": S0, "thinking": S0, "content": S1}], {}, S0),
}


def capabilities(t: ChatTemplate, variables: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Each capability ``yes``, ``drops`` or ``raises``."""
    from harness.prompt.conversation import Conversation
    from harness.prompt.modes import plan_prompt

    variables = dict(variables or {})
    report = {}
    for name, (messages, extra, needle) in CAPABILITY_PROBES.items():
        try:
            text = t.render(messages, add_generation_prompt=False, variables={**variables, **extra})
        except TemplateError:
            report[name] = "raises"
            continue
        report[name] = "yes" if needle in text else "drops"
    hello = Conversation.of(("user", "hi"), ("assistant", "Hel"))
    try:
        plan_prompt(hello, t, "continue", variables=variables)
        report["continue_final_message"] = "yes"
    except HarnessError:
        report["continue_final_message"] = "raises"
    try:
        user = [{"role": "user", "content": "hi"}]
        gen = t.render(user, add_generation_prompt=True, variables=variables)
        bare = t.render(user, add_generation_prompt=False, variables=variables)
        report["add_generation_prompt"] = "yes" if gen != bare else "drops"
    except TemplateError:
        report["add_generation_prompt"] = "raises"
    return report

