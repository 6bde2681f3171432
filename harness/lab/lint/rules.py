"""Lint's rules: one row per code, with the severity, a one-line "why" and the CWE where one applies.

The table is the single source of truth for every output: the text report's legend, the JSON
``rules`` block and the SARIF ``tool.driver.rules`` list. A new rule is one row here and a check
that emits a :class:`~harness.lab.lint.findings.Finding` with its code (runtime checks: the list in
:func:`harness.lab.lint.lint`; static ones: :mod:`harness.lab.lint.static`; tokenizer ones:
:mod:`harness.lab.vocab`). Codes are stable: L0xx need a render, L1xx read the source only,
L2xx read the model's tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("error", "warning", "info")  # most severe first


@dataclass(frozen=True)
class Rule:
    code: str
    severity: str  # the severity its findings carry
    title: str  # a short name (SARIF's rule name)
    why: str  # one line: why a finding matters
    cwe: int | None = None

    @property
    def cwe_id(self) -> str | None:
        return f"CWE-{self.cwe}" if self.cwe else None


def _rules(*rows: tuple) -> dict[str, Rule]:
    return {row[0]: Rule(*row) for row in rows}


RULES: dict[str, Rule] = _rules(
    ("L001", "error", "render-fails", "the template raises on a basic conversation: it cannot be used as is"),
    ("L002", "info", "refuses-unusual", "the template refuses an unusual but valid conversation shape"),
    ("L003", "error", "end-not-eog", "the assistant's end-of-turn marker is not an end-of-generation token: "
                                     "the model never stops"),
    ("L004", "error", "bos-doubled", "two BOS tokens start the prompt, which shifts the model's behaviour"),
    ("L005", "warning", "marker-not-special", "a marker that looks special is split into ordinary tokens"),
    ("L006", "warning", "not-prefix-stable", "N+1 messages do not extend N messages: KV-cache reuse breaks"),
    ("L007", "error", "system-dropped", "the system message is silently dropped"),
    ("L008", "error", "no-generation-prompt", "add_generation_prompt adds nothing although assistant turns "
                                              "have an opening marker"),
    ("L009", "warning", "whitespace-differs", "turn separators differ only in whitespace"),
    ("L010", "error", "content-altered", "message content is altered or lost on the way into the prompt"),
    ("L011", "warning", "bos-by-template", "the template writes BOS and the tokenizer adds one: "
                                          "add_special clients send two"),
    ("L012", "error", "markers-underivable", "turn markers cannot be derived, so roles cannot be told apart"),
    ("L013", "warning", "content-control-tokens", "message content holds control-token strings the tokenizer "
                                                  "makes real", 1427),
    ("L014", "error", "id-outside-vocab", "a BOS/EOS/end-of-generation id lies outside the vocabulary"),
    ("L015", "error", "lint-time-limit", "lint's time budget ran out: the rest of this template is unchecked",
     400),
    ("L016", "warning", "reply-not-round-trip", "a reply stored as a message does not re-render as the model "
                                                "wrote it: the next prompt shows it a conversation it did not see"),
    ("L017", "info", "reply-whitespace-lost", "a reply ending in whitespace loses it when stored and rendered "
                                              "again: the next prompt differs from what the model wrote there"),
    ("L101", "error", "python-internals", "reaches for Python internals or code execution: a server-side "
                                          "template injection, whatever the sandbox does", 1336),
    ("L102", "warning", "invisible-characters", "invisible or bidirectional characters hide what the "
                                                "template really says", 451),
    ("L103", "warning", "control-characters", "control characters in the source"),
    ("L104", "warning", "date-gated", "output changes with the date beyond printing it: a time bomb", 511),
    ("L105", "warning", "content-keyed-text", "a branch keyed on words in message content writes text of its "
                                              "own: an instruction injected when a user says them", 1427),
    ("L106", "info", "embedded-url", "the template embeds URLs"),
    ("L107", "warning", "reflection", "attributes chosen by name at run time (|attr, map('attr'), "
                                      "getattr-like calls) are how sandbox escapes hide", 470),
    ("L108", "error", "loads-template", "include/import/extends/from pull in code from outside the template",
     829),
    ("L109", "warning", "unknown-filter", "a filter or test no engine provides: other engines (and harness) "
                                          "fail to render it"),
    ("L110", "error", "decodes-payload", "decoding (base64, hex, ...) at render time hides a payload from "
                                         "review", 506),
    ("L111", "error", "writes-instruction", "the template writes instruction-like text into the prompt: a "
                                            "planted prompt injection", 1427),
    ("L112", "error", "static-limit", "too large or deeply nested for the static pass: its contents are "
                                      "unchecked", 400),
    ("L201", "warning", "confusable-tokens", "role-like tokens that look alike let text pass for a control "
                                             "token", 1007),
    ("L202", "error", "end-of-turn-not-eog", "an end-of-turn token the model declares is not end-of-generation: "
                                             "generation runs past it"),
    ("L203", "warning", "differs-from-config", "the template differs from the tokenizer_config.json it "
                                               "should match", 345),
)


def rule(code: str) -> Rule:
    return RULES[code]


def at_least(severity: str, threshold: str) -> bool:
    """Whether `severity` is `threshold` or more severe (error > warning > info)."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)
