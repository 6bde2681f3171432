"""Template lint: render a battery of probe conversations and report what is wrong.

Each finding has a stable code, a severity and one line of explanation; the table of rules,
with a one-line why and the CWE where one applies, is :mod:`harness.lab.lint.rules`. Checks that need
the model's tokenizer (end-of-turn is an EOG token, BOS doubling, markers are single special
tokens) run only when a tokenizer is given.

The static pass (:mod:`harness.lab.lint.static`, L101-L112) runs first, so a render failure hides
nothing it can see. Then the probes (L001/L002); if a basic conversation fails, nothing else
can be rendered and lint stops. Then the runtime checks: ``BEFORE_MARKERS`` run on the
template, ``WITH_MARKERS`` also on its derived turn markers. **A new runtime rule** is a function
``check(ctx: Context) -> list[Finding]`` added to one of those tuples, plus its row in
:data:`harness.lab.lint.rules.RULES`.

Every render goes through a :class:`GuardedTemplate`: after one render is stopped for time or
memory (:class:`TemplateLimitError`) the template is not rendered again, and past the deadline
lint stops with L015, so a slow template costs one render timeout, not dozens.
The same finding from several probes is reported once, naming them all.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.errors import TemplateError, TemplateLimitError
from harness.lab.lint.findings import Finding, deduplicated
from harness.lab.lint.reply import CONVERSATIONS, reply_findings
from harness.prompt.markers import TurnMarkers, derive_markers
from harness.prompt.segments import sentinel
from harness.prompt.templates import ChatTemplate

_SPECIAL_RE = re.compile(r"<\|?[A-Za-z_][A-Za-z0-9_\-|]*\|?>|\[/?[A-Z_]{2,}\]")


def _msgs(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": r, "content": c} for r, c in pairs]


BASIC_PROBES: dict[str, list[dict[str, str]]] = {
    "user only": _msgs(("user", "Hello there")),
    "system first": _msgs(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Why?")),
    "multi-turn, no system": _msgs(("user", "Hi"), ("assistant", "Hello!"), ("user", "Why?"),
                                   ("assistant", "Because."), ("user", "Ok")),
    "non-ASCII": _msgs(("user", "Grüße — 世界 🎉 «ok»"), ("assistant", "Ça va ✓")),
}
UNUSUAL_PROBES: dict[str, list[dict[str, str]]] = {
    "same role twice": _msgs(("user", "One"), ("user", "Two")),
    "empty content": _msgs(("user", ""), ("assistant", ""), ("user", "Hi")),
    "tool message": _msgs(("user", "Weather?"), ("assistant", "Checking."), ("tool", "{\"temp\": 21}")),
}


class OutOfTime(Exception):
    """Lint's deadline passed before a render (not a TemplateError: no check may swallow it)."""


@dataclass
class Guard:
    """Shared by a template's renders: the deadline, and the limit error that stopped one."""

    deadline: float | None = None
    stopped: TemplateLimitError | None = None

    def check(self) -> None:
        if self.stopped is not None:
            raise self.stopped
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise OutOfTime


@dataclass(frozen=True)
class GuardedTemplate(ChatTemplate):
    """A template whose renders stop for good after one hits the worker's limits, and at the deadline."""

    guard: Guard = field(default_factory=Guard, compare=False, repr=False)

    @classmethod
    def of(cls, t: ChatTemplate, deadline: float | None) -> GuardedTemplate:
        return cls(t.name, t.source, t.origin, t.now, Guard(deadline))

    def render(self, messages, *, add_generation_prompt: bool, variables=None) -> str:
        self.guard.check()
        try:
            return super().render(messages, add_generation_prompt=add_generation_prompt, variables=variables)
        except TemplateLimitError as exc:
            self.guard.stopped = exc
            raise


class Tokenizer:
    """What lint needs of a model (a Backend satisfies it)."""

    info: Any

    def tokenize(self, text: str) -> list[int]: ...
    def is_special(self, token: int) -> bool: ...


@dataclass(frozen=True)
class Context:
    """What a runtime check reads: the (guarded) template, variables, tokenizer, derived markers."""

    template: ChatTemplate
    variables: Mapping[str, Any]
    tokenizer: Tokenizer | None = None
    markers: TurnMarkers | None = None

    def render(self, messages, gen: bool) -> str:
        return self.template.render(messages, add_generation_prompt=gen, variables=self.variables)


def _error_line(exc: TemplateError, name: str) -> int | None:
    """The template line a render error names (its ``where`` is ``NAME:LINE`` or ``NAME``)."""
    where = exc.where or ""
    line = where[len(name) + 1:] if where.startswith(name + ":") else ""
    return int(line) if line.isdigit() else None


def _failing_message(ctx: Context, messages) -> int:
    for n in range(1, len(messages) + 1):
        try:
            ctx.render(messages[:n], False)
        except TemplateError:
            return n - 1
    return len(messages) - 1


def check_probes(ctx: Context) -> list[Finding]:
    findings = []
    for probes, code, severity in ((BASIC_PROBES, "L001", "error"), (UNUSUAL_PROBES, "L002", "info")):
        for name, messages in probes.items():
            for gen in (False, True):
                try:
                    text = ctx.render(messages, gen)
                except TemplateError as exc:
                    index = _failing_message(ctx, messages)
                    findings.append(Finding(code, severity, f"raises at message {index} "
                                            f"({messages[index]['role']}): {exc.message}", name,
                                            _error_line(exc, ctx.template.name)))
                    break
                if code == "L001":
                    findings.extend(_content_checks(text, messages, name))
    return findings


def _content_checks(text: str, messages, probe: str) -> list[Finding]:
    out = []
    for m in messages:
        if m["role"] != "system" and m["content"].strip() and m["content"].strip() not in text:
            out.append(Finding("L010", "error", f"{m['role']} content {m['content']!r} is not in the "
                               "rendered prompt", probe))
    system = [m for m in messages if m["role"] == "system"]
    if system and system[0]["content"] not in text:
        out.append(Finding("L007", "error", "the system message is silently dropped", probe))
    return out


def check_prefix_stability(ctx: Context) -> list[Finding]:
    messages = BASIC_PROBES["multi-turn, no system"]
    for n in range(1, len(messages)):
        try:
            shorter, longer = ctx.render(messages[:n], False), ctx.render(messages[: n + 1], False)
        except TemplateError:
            return []
        if not longer.startswith(shorter):
            return [Finding("L006", "warning", f"rendering {n + 1} messages does not extend the rendering of "
                            f"{n} (KV-cache reuse breaks)", "multi-turn, no system")]
    return []


def check_whitespace(ctx: Context) -> list[Finding]:
    roles = ["user", "assistant"] * 3
    messages = [{"role": r, "content": sentinel(i)} for i, r in enumerate(roles)]
    try:
        pieces = re.split("\ue000\\d+\ue001", ctx.render(messages, False))
    except TemplateError:
        return []
    if len(pieces) != len(messages) + 1:
        return []  # contents rewritten: L012 reports it
    gaps = pieces[1:-1]
    out = []
    for first, later in ((gaps[0], gaps[2]), (gaps[1], gaps[3])):
        if first != later and "".join(first.split()) == "".join(later.split()):
            out.append(Finding("L009", "warning", f"turn separators differ only in whitespace: {first!r} vs "
                               f"{later!r}", "multi-turn, no system"))
    return out


def check_dates(ctx: Context) -> list[Finding]:
    from harness.lab.audit import date_findings

    return date_findings(ctx.template, ctx.variables)


def check_generation_prompt(ctx: Context) -> list[Finding]:
    markers = ctx.markers
    if markers is not None and not markers.generation_prompt and markers.opens.get("assistant"):
        return [Finding("L008", "error", "add_generation_prompt adds nothing, yet assistant turns open with "
                        f"{markers.opens['assistant']!r}", "user only")]
    return []


def check_tokens(ctx: Context) -> list[Finding]:
    tok, markers = ctx.tokenizer, ctx.markers
    if tok is None or markers is None:
        return []
    out = []
    info = tok.info
    outside = [f"{what} {i}" for what, ids in (("BOS", [info.bos_id]), ("EOS", [info.eos_id]),
                                                ("end-of-generation", sorted(info.eog_ids)))
               for i in ids if i is not None and not 0 <= i < info.n_vocab]
    if outside:
        out.append(Finding("L014", "error", f"token id(s) outside the vocabulary of {info.n_vocab}: "
                           + ", ".join(outside), "metadata"))
    close = markers.closes.get("assistant", "").strip()
    if close:
        ids = tok.tokenize(close)
        if not ids or ids[0] not in info.eog_ids:
            out.append(Finding("L003", "error", f"the assistant turn ends with {close!r}, which is not an "
                               "end-of-generation token of this model: it will never stop", "markers"))
    rendered = ctx.render(BASIC_PROBES["user only"], True)
    ids = tok.tokenize(rendered)
    # harness adds the model's BOS only when the rendered text does not start with it
    if info.add_bos and info.bos_id is not None and not (info.bos_text and rendered.startswith(info.bos_text)):
        ids = [info.bos_id, *ids]
    if info.bos_id is not None and ids[:2] == [info.bos_id, info.bos_id]:
        out.append(Finding("L004", "error", f"the prompt starts with two BOS tokens ({info.bos_text!r})",
                           "user only"))
    elif info.add_bos and info.bos_text and rendered.startswith(info.bos_text):
        out.append(Finding("L011", "warning", f"the template writes {info.bos_text!r} and the tokenizer adds a "
                           "BOS too: tokenizing with add_special (llama.cpp /completion) doubles it",
                           "user only"))
    scaffold = " ".join([*markers.opens.values(), *markers.closes.values(), markers.generation_prompt])
    for marker in sorted(set(_SPECIAL_RE.findall(scaffold))):
        ids = tok.tokenize(marker)
        if len(ids) != 1 or not tok.is_special(ids[0]):
            out.append(Finding("L005", "warning", f"marker {marker!r} is {len(ids)} token(s) here, not one "
                               "special token of this model", "markers"))
    return out


def check_reply_round_trip(ctx: Context) -> list[Finding]:
    """L016/L017 (:mod:`harness.lab.lint.reply`): a reply stored as the generator stores it."""
    if ctx.markers is None:
        return []
    return reply_findings(ctx.template, ctx.variables, ctx.markers.generation_prompt,
                          {name: BASIC_PROBES[name] for name in CONVERSATIONS})


Check = Callable[[Context], list[Finding]]
BEFORE_MARKERS: tuple[Check, ...] = (check_prefix_stability, check_whitespace, check_dates)
WITH_MARKERS: tuple[Check, ...] = (check_generation_prompt, check_tokens, check_reply_round_trip)


def lint(t: ChatTemplate, variables: Mapping[str, Any] | None = None,
         tokenizer: Tokenizer | None = None, *, deadline: float | None = None
         ) -> tuple[list[Finding], TurnMarkers | None]:
    """Static findings, then runtime ones; `deadline` (``time.monotonic()``) ends the renders (L015)."""
    from harness.lab.lint.static import static_findings

    findings = static_findings(t)
    ctx = Context(GuardedTemplate.of(t, deadline), dict(variables or {}), tokenizer)
    try:
        markers = _runtime(ctx, findings)
    except OutOfTime:
        findings.append(Finding("L015", "error", "lint's time budget ran out before the checks finished; "
                                "the rest of this template is unchecked", "time"))
        markers = None
    return deduplicated(findings), markers


def _runtime(ctx: Context, findings: list[Finding]) -> TurnMarkers | None:
    """Append the runtime findings to `findings` (as they come: a deadline keeps what was found)."""
    findings += check_probes(ctx)
    if any(f.code == "L001" for f in findings):
        return None
    for check in BEFORE_MARKERS:
        findings += check(ctx)
    try:
        markers = derive_markers(ctx.template, ctx.variables)
    except TemplateError as exc:
        findings.append(Finding("L012", "error", exc.message, "markers"))
        return None
    ctx = replace(ctx, markers=markers)
    for check in WITH_MARKERS:
        findings += check(ctx)
    return markers


def capabilities(t: ChatTemplate, variables: Mapping[str, Any] | None = None, *,
                 deadline: float | None = None) -> dict[str, str] | None:
    """The capability report (:func:`harness.lab.audit.capabilities`) under lint's guard
    (None when the deadline passed first)."""
    from harness.lab.audit import capabilities as report

    try:
        return report(GuardedTemplate.of(t, deadline), variables)
    except OutOfTime:
        return None


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
