"""Lint's rendered audits: date-gated output (L104) and the capability report.

The static pass (L101-L112) is :mod:`harness.lab.lint.static`. L104 renders with ``strftime_now``
pinned to several dates and compares the prompts beyond the dates they print. The capability
report (as minja's caps and llama.cpp's ``chat_template_caps``) renders small probes: system role,
tools, tool calls, tool results, content parts, reasoning, ``continue_final_message`` and
``add_generation_prompt``, each ``yes``, ``drops`` (renders but the probe's text is missing) or
``raises``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from harness.errors import HarnessError, TemplateError
from harness.lab.lint.findings import Finding
from harness.prompt.templates import ChatTemplate

DATES = ("2024-01-01", "2025-06-15", "2026-12-31", "2031-02-28")


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
        from harness.lab.lint.static import Locator

        line, column = Locator(t.source).position(t.source.index("strftime_now"))
        return [Finding("L104", "warning", "output depends on the date beyond printing it (rendered at "
                        + ", ".join(DATES) + ")", "strftime_now", line, column)]
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

