"""Render session events on the terminal: streamed tokens coloured by role and shaded by
entropy, notices, the token inspector, the message list.

Entropy shading picks its palette for the terminal's colour depth: the three shades must stay
apart where the terminal has 256 colours (prompt_toolkit maps nearby hex colours to one index)
or 16, and the legend names what is drawn.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from prompt_toolkit import print_formatted_text
from prompt_toolkit.application.current import get_app_session
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.output import ColorDepth

from harness.chat.events import (
    Alternatives,
    EditRequest,
    EntropyReport,
    Event,
    MessageList,
    MessageShown,
    Notice,
    RawPrompt,
    TokenStreamed,
    TokenView,
    TurnFinished,
    TurnStarted,
)
from harness.repl.toolbar import ROLE_STYLES
from harness.untrusted import visible

# Entropy in bits: calm tokens (< 1 bit) stay plain; above, three shades per colour depth, each
# (name in the legend, style). The 256-colour ones are exact xterm palette entries.
LIMITS = (1.0, 2.5, 4.0)
PALETTES: dict[ColorDepth, tuple[tuple[str, str], ...]] = {
    ColorDepth.DEPTH_24_BIT: (("grey", "bg:#3a3a3a"), ("brown", "bg:#5f4b1f"), ("red", "bg:#7a2a2a")),
    ColorDepth.DEPTH_8_BIT: (("grey", "bg:#444444"), ("brown", "bg:#875f00"), ("red", "bg:#870000")),
    ColorDepth.DEPTH_4_BIT: (("grey", "bg:ansibrightblack"), ("yellow", "bg:ansiyellow"), ("red", "bg:ansired")),
    ColorDepth.DEPTH_1_BIT: (("underlined", "underline"), ("bold", "bold"), ("bold underlined", "bold underline")),
}


def shade(entropy_bits: float | None, depth: ColorDepth = ColorDepth.DEPTH_8_BIT) -> str:
    if entropy_bits is None or entropy_bits < LIMITS[0]:
        return ""
    palette = PALETTES[depth]
    return next((style for limit, (_, style) in zip((*LIMITS[1:], float("inf")), palette, strict=True)
                 if entropy_bits < limit))


def legend(depth: ColorDepth) -> str:
    """The shading legend for what `shade` draws at `depth`."""
    names = [name for name, _ in PALETTES[depth]]
    return f"plain < 1 bit < {names[0]} < 2.5 < {names[1]} < 4 < {names[2]}"


def terminal_depth(output: Any = None) -> ColorDepth:
    """The colour depth prompt_toolkit will draw with on `output` (default: the terminal)."""
    output = output or get_app_session().output
    return ColorDepth.from_env() or output.get_default_color_depth()


def _visible(text: str) -> str:
    return text.replace("\n", "↵\n")


class Display:
    def __init__(self, output: Any = None, ui: Mapping[str, Any] | None = None):
        self.output = output
        self.ui = ui if ui is not None else {"shade": True}
        self._role: str | None = None
        self.depth = terminal_depth(output)
        self.edit_requests: list[EditRequest] = []  # the REPL answers these after the command

    def _print(self, fragments: list[tuple[str, str]], end: str = "") -> None:
        fragments = [(style, visible(text)) for style, text in fragments]  # controls shown, not sent
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
        if event.given:  # what the model was given to start from: shown, marked as given
            self._print([(f"{ROLE_STYLES.get(event.writer or '', '')} italic underline", event.given)])

    def _on_TokenStreamed(self, event: TokenStreamed) -> None:
        if event.role != self._role and event.role != "template":
            self._print([("bold " + ROLE_STYLES.get(event.role, ""), f" [{event.role}] ")])
        self._role = event.role if event.role != "template" else self._role
        background = shade(event.entropy_bits, self.depth) if self.ui.get("shade") else ""
        replayed = " italic underline" if event.forced else ""  # a /branch's replayed prefix
        self._print([(f"{ROLE_STYLES.get(event.role, '')} {background}{replayed}", event.text)])

    def _on_TurnFinished(self, event: TurnFinished) -> None:
        gen = event.generation
        tail = f"[{gen.stop_reason}, {len(gen.tokens)} tokens, {gen.tokens_per_second:.0f} tok/s]"
        self._print([("", "\n"), ("ansibrightblack", tail)], end="\n")
        if event.kept:
            self._print([("ansiyellow", event.kept)], end="\n")

    def _on_RawPrompt(self, event: RawPrompt) -> None:
        fragments = []
        for i, (piece, role, special) in enumerate(event.pieces):
            style = ROLE_STYLES.get(role, "")
            boundary = " underline" if i % 2 else ""  # alternate tokens underlined: boundaries show
            fragments.append((style + (" reverse" if special else boundary), _visible(piece)))
        self._print(fragments, end="\n")
        self._print([("ansibrightblack", f"{len(event.pieces)} tokens; special tokens reversed, "
                      "every other token underlined; colour = role")], end="\n")

    def _on_TokenView(self, event: TokenView) -> None:
        fragments: list[tuple[str, str]] = []
        for k, row in enumerate(event.rows):
            if k % 10 == 0:
                fragments.append(("ansibrightblack", f"⟨{k}⟩"))
            style = f"{ROLE_STYLES.get(row.role, '')} {shade(row.entropy_bits, self.depth)}"
            style += " reverse" if row.special else (" underline" if k % 2 else "")
            fragments.append((style, _visible(row.piece)))
        self._print(fragments, end="\n")
        self._print([("ansibrightblack", f"⟨k⟩ marks token k; \\xNN: bytes of a split character; "
                      f"entropy: {legend(self.depth)}")], end="\n")
        self._print([("ansibrightblack", f"message {event.message}: {len(event.rows)} tokens, "
                      f"{event.stop_reason}; /alts K, /branch K ALT")], end="\n")

    def _on_Alternatives(self, event: Alternatives) -> None:
        h = "-" if event.entropy_bits is None else f"{event.entropy_bits:.2f} bits"
        self._print([("bold", f"token {event.position} of message {event.message}: "
                      f"{event.came!r}  (entropy {h})")], end="\n")
        for rank, piece, prob in event.options:
            mark = "*" if piece == event.came else " "
            bar = "█" * max(1, round(prob * 30))
            self._print([("", f" {mark}{rank}  {prob:7.2%}  "), ("ansicyan", f"{bar} "), ("", repr(piece))],
                        end="\n")
        if not event.came_in_top and event.came_probability is not None:
            self._print([("", f" *-  {event.came_probability:7.2%}  "), ("", repr(event.came)),
                         ("ansibrightblack", "  (sampled, not in the top)")], end="\n")

    def _on_MessageList(self, event: MessageList) -> None:
        for row in event.rows:
            alt = f" [{row.alternative}/{row.alternatives}]" if row.alternatives > 1 else ""
            flat = " ".join(row.content.split())
            room = max(20, shutil.get_terminal_size((100, 24)).columns - 16 - len(alt))
            text = flat if len(flat) <= room else flat[:room - 1] + "…"
            self._print([("ansibrightblack", f"{row.index:3d}{'*' if row.generated else ' '} "),
                         ("bold " + ROLE_STYLES.get(row.role, ""), f"{row.role:9}"),
                         ("ansibrightblack", alt), ("", f" {text}")], end="\n")
        if not event.rows:
            self._print([("ansibrightblack", "(empty conversation)")], end="\n")

    def _on_MessageShown(self, event: MessageShown) -> None:
        row = event.row
        alt = f" [{row.alternative}/{row.alternatives}]" if row.alternatives > 1 else ""
        self._print([("ansibrightblack", f"{row.index}{'*' if row.generated else ''} "),
                     ("bold " + ROLE_STYLES.get(row.role, ""), row.role), ("ansibrightblack", alt)], end="\n")
        self._print([("", row.content)], end="\n")

    def _on_EditRequest(self, event: EditRequest) -> None:
        self.edit_requests.append(event)

    def _on_EntropyReport(self, event: EntropyReport) -> None:
        for scope, roles in event.rows.items():
            self._print([("bold", scope)], end="\n")
            for role, s in roles.items():
                ent, sur, ppl = s["mean_entropy_bits"], s["mean_surprisal_bits"], s["perplexity"]
                bounds = s.get("entropy_bounds_bits")  # a server's top-k: what H may be
                within = "" if not bounds else f" in [{_n(bounds[0]).strip()}, {_n(bounds[1]).strip()}]"
                text = (f"  {role:10} {s['tokens']:5d} tok  H {_n(ent)}{within}  surprisal {_n(sur)}  ppl {_n(ppl)}")
                self._print([(ROLE_STYLES.get(role, ""), text)], end="\n")


def _n(x: float | None) -> str:
    return "  -   " if x is None else f"{x:6.3f}"
