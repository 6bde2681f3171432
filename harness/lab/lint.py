"""Template lint: render a battery of probe conversations and report what is wrong.

Each finding has a stable code, a severity and one line of explanation. Checks that need the
model's tokenizer (end-of-turn is an EOG token, BOS doubling, markers are single special
tokens) run only when a tokenizer is given.

  L001 error    the template raises on a basic conversation
  L002 info     the template refuses an unusual one (same role twice, tool, empty content)
  L003 error    the assistant's end-of-turn marker is not an end-of-generation token
  L004 error    BOS doubled in the tokens harness feeds the model (the template writes it twice)
  L011 warning  the template writes BOS and the tokenizer adds one: clients tokenizing with
                add_special (llama.cpp's /completion, llama-cli -p) send two
  L005 warning  a special-looking marker is not one special token of this model
  L006 warning  not prefix-stable: N+1 messages do not extend N messages (breaks KV reuse)
  L007 error    the system message is silently dropped
  L008 error    no generation prompt although assistant turns have an opening marker
  L009 warning  whitespace differs between turns of the same kind
  L010 error    message content is altered or lost (non-ASCII or plain text not found)
  L012 error    turn markers cannot be derived (content is rewritten), so roles cannot be told
  L013 warning  message content holds control-token strings the tokenizer makes real (--messages)
  L014 error    a BOS/EOS/end-of-generation id lies outside the vocabulary

A static pass (:mod:`harness.lab.audit`, L101-L106) runs first, so a render failure hides
nothing it can see. The same finding from several probes is reported once, naming them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import TemplateError
from harness.lab.findings import Finding, deduplicated
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


class Tokenizer:
    """What lint needs of a model (a Backend satisfies it)."""

    info: Any

    def tokenize(self, text: str) -> list[int]: ...
    def is_special(self, token: int) -> bool: ...


def _render(t: ChatTemplate, messages, gen: bool, variables) -> str:
    return t.render(messages, add_generation_prompt=gen, variables=variables)


def _failing_message(t: ChatTemplate, messages, variables) -> int:
    for n in range(1, len(messages) + 1):
        try:
            _render(t, messages[:n], False, variables)
        except TemplateError:
            return n - 1
    return len(messages) - 1


def check_probes(t: ChatTemplate, variables: Mapping[str, Any]) -> list[Finding]:
    findings = []
    for probes, code, severity in ((BASIC_PROBES, "L001", "error"), (UNUSUAL_PROBES, "L002", "info")):
        for name, messages in probes.items():
            for gen in (False, True):
                try:
                    text = _render(t, messages, gen, variables)
                except TemplateError as exc:
                    index = _failing_message(t, messages, variables)
                    findings.append(Finding(code, severity, f"raises at message {index} "
                                            f"({messages[index]['role']}): {exc.message}", name))
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


def check_prefix_stability(t: ChatTemplate, variables) -> list[Finding]:
    messages = BASIC_PROBES["multi-turn, no system"]
    for n in range(1, len(messages)):
        try:
            shorter, longer = _render(t, messages[:n], False, variables), _render(t, messages[: n + 1], False, variables)
        except TemplateError:
            return []
        if not longer.startswith(shorter):
            return [Finding("L006", "warning", f"rendering {n + 1} messages does not extend the rendering of "
                            f"{n} (KV-cache reuse breaks)", "multi-turn, no system")]
    return []


def check_generation_prompt(t: ChatTemplate, variables, markers: TurnMarkers) -> list[Finding]:
    if not markers.generation_prompt and markers.opens.get("assistant"):
        return [Finding("L008", "error", "add_generation_prompt adds nothing, yet assistant turns open with "
                        f"{markers.opens['assistant']!r}", "user only")]
    return []


def check_whitespace(t: ChatTemplate, variables) -> list[Finding]:
    roles = ["user", "assistant"] * 3
    messages = [{"role": r, "content": sentinel(i)} for i, r in enumerate(roles)]
    try:
        pieces = re.split("\ue000\\d+\ue001", _render(t, messages, False, variables))
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


def check_tokens(t: ChatTemplate, variables, markers: TurnMarkers, tok: Tokenizer) -> list[Finding]:
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
    rendered = _render(t, BASIC_PROBES["user only"], True, variables)
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


def lint(t: ChatTemplate, variables: Mapping[str, Any] | None = None,
         tokenizer: Tokenizer | None = None) -> tuple[list[Finding], TurnMarkers | None]:
    from harness.lab.audit import date_findings, static_findings

    variables = dict(variables or {})
    findings = static_findings(t) + check_probes(t, variables)
    if any(f.code == "L001" for f in findings):
        return deduplicated(findings), None
    findings += check_prefix_stability(t, variables)
    findings += check_whitespace(t, variables)
    findings += date_findings(t, variables)
    try:
        markers = derive_markers(t, variables)
    except TemplateError as exc:
        return deduplicated([*findings, Finding("L012", "error", exc.message, "markers")]), None
    findings += check_generation_prompt(t, variables, markers)
    if tokenizer is not None:
        findings += check_tokens(t, variables, markers, tokenizer)
    return deduplicated(findings), markers


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def lint_named(info: Any, model_name: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Lint findings and capabilities of each named template of a GGUF (`info`: its header)."""
    from harness.lab.audit import capabilities

    out = {}
    for name, source in info.named_templates.items():
        template = ChatTemplate(f"{model_name}:gguf:{name}", source, "gguf")
        findings, _ = lint(template, variables)
        out[template.name] = {"findings": [f.to_dict() for f in findings],
                              "capabilities": capabilities(template, variables)}
    return out
