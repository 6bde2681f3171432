"""Render session events on the terminal: streamed tokens coloured by role, notices, tables."""

from __future__ import annotations

from typing import Any

from prompt_toolkit import print_formatted_text
from prompt_toolkit.formatted_text import FormattedText

from harness.repl.toolbar import ROLE_STYLES
from harness.session import (
    EntropyReport,
    Event,
    Notice,
    RawPrompt,
    TokenStreamed,
    TurnFinished,
    TurnStarted,
)


def _visible(text: str) -> str:
    return text.replace("\n", "↵\n")


class Display:
    def __init__(self, output: Any = None):
        self.output = output
        self._role: str | None = None

    def _print(self, fragments: list[tuple[str, str]], end: str = "") -> None:
        print_formatted_text(FormattedText(fragments), output=self.output, end=end, flush=True)

    def emit(self, event: Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}")
        handler(event)

    def _on_Notice(self, event: Notice) -> None:
        style = {"error": "ansired", "warning": "ansiyellow"}.get(event.level, "ansibrightblack")
        prefix = f"{event.level}: " if event.level != "info" else ""
        self._print([(style, prefix + event.text)], end="\n")

    def _on_TurnStarted(self, event: TurnStarted) -> None:
        self._role = event.writer
        self._print([("bold " + ROLE_STYLES.get(event.writer or "", ""), f"[{event.writer or 'text'}] ")])

    def _on_TokenStreamed(self, event: TokenStreamed) -> None:
        if event.role != self._role and event.role != "template":
            self._print([("bold " + ROLE_STYLES.get(event.role, ""), f" [{event.role}] ")])
        self._role = event.role if event.role != "template" else self._role
        self._print([(ROLE_STYLES.get(event.role, ""), event.text)])

    def _on_TurnFinished(self, event: TurnFinished) -> None:
        gen = event.generation
        tail = f"[{gen.stop_reason}, {len(gen.tokens)} tokens, {gen.tokens_per_second:.0f} tok/s]"
        self._print([("", "\n"), ("ansibrightblack", tail)], end="\n")

    def _on_RawPrompt(self, event: RawPrompt) -> None:
        fragments = []
        for i, (piece, role, special) in enumerate(event.pieces):
            style = ROLE_STYLES.get(role, "")
            boundary = " underline" if i % 2 else ""  # alternate tokens underlined: boundaries show
            fragments.append((style + (" reverse" if special else boundary), _visible(piece)))
        self._print(fragments, end="\n")
        self._print([("ansibrightblack", f"{len(event.pieces)} tokens; special tokens reversed, "
                      "every other token underlined; colour = role")], end="\n")

    def _on_EntropyReport(self, event: EntropyReport) -> None:
        for scope, roles in event.rows.items():
            self._print([("bold", scope)], end="\n")
            for role, s in roles.items():
                ent, sur, ppl = s["mean_entropy_bits"], s["mean_surprisal_bits"], s["perplexity"]
                text = (f"  {role:10} {s['tokens']:5d} tok  H {_n(ent)}  surprisal {_n(sur)}  ppl {_n(ppl)}")
                self._print([(ROLE_STYLES.get(role, ""), text)], end="\n")


def _n(x: float | None) -> str:
    return "  -   " if x is None else f"{x:6.3f}"
