"""Render session events on the terminal: streamed tokens coloured by role and shaded by
entropy, notices, the token inspector, the message list.

Entropy shading picks its palette for the terminal's colour depth: the three shades must stay
apart where the terminal has 256 colours (prompt_toolkit maps nearby hex colours to one index)
or 16, and the legend names what is drawn.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Mapping
from typing import Any

from prompt_toolkit import print_formatted_text
from prompt_toolkit.application.current import get_app_session
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.output import ColorDepth

from harness.chat.events import (
    Alternatives,
    Candidates,
    EditRequest,
    EntropyReport,
    Event,
    Legend,
    MessageList,
    MessageShown,
    Notice,
    RawPrompt,
    StepRequest,
    TokenStreamed,
    TokenView,
    TurnFinished,
    TurnStarted,
)
from harness.repl.candidates import layout
from harness.repl.palette import role_style
from harness.repl.whitespace import MARK, marked, one_line
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
        self._held: list[tuple[str, str]] = []  # blanks at the end of the streamed text so far
        self._started = False  # the turn has drawn text other than blanks
        self.depth = terminal_depth(output)
        self.edit_requests: list[EditRequest] = []  # the REPL answers these after the command
        self.pick_requests: list[Candidates] = []  # and these: which candidate to keep
        self.step_requests: list[StepRequest] = []  # and these: a turn to walk with the arrow keys

    def _print(self, fragments: list[tuple[str, str]], end: str = "") -> None:
        fragments = [(style, visible(text)) for style, text in fragments]  # controls shown, not sent
        print_formatted_text(FormattedText(fragments), output=self.output, end=end, flush=True)

    def emit(self, event: Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}")
        handler(event)

    def _on_Notice(self, event: Notice) -> None:
        style = {"error": "ansired", "warning": "ansiyellow"}.get(event.level, "ansibrightblack")
        prefix = f"{event.level}: " if event.level != "info" else ""
        width = self.columns()
        lines = [w for line in (prefix + event.text).split("\n") for w in wrapped(line, width)]
        self._print([(style, "\n".join(lines))], end="\n")

    def _on_TurnStarted(self, event: TurnStarted) -> None:
        self._role = event.writer
        self._held, self._started = [], False
        self._print([("bold " + role_style(event.writer), f"[{event.writer or 'text'}] ")])
        if event.given:  # what the model was given to start from: shown, marked as given, its edges visible
            self._print(marked(event.given, f"{role_style(event.writer)} italic underline"))
            self._started = True

    def _on_TokenStreamed(self, event: TokenStreamed) -> None:
        if event.role != self._role and event.role != "template":
            self._flush(trailing=False)
            self._print([("bold " + role_style(event.role), f" [{event.role}] ")])
        self._role = event.role if event.role != "template" else self._role
        background = shade(event.entropy_bits, self.depth) if self.ui.get("shade") else ""
        replayed = " italic underline" if event.forced else ""  # a /branch's replayed prefix
        self._stream(event.text, f"{role_style(event.role)} {background}{replayed}")

    def _stream(self, text: str, style: str) -> None:
        """Draw streamed text exactly, its blanks visible: the turn's leading blanks are marked,
        and blanks at the end are held until text follows (then drawn as they are, a newline
        marked) or the turn ends (then marked as trailing)."""
        body = text.rstrip(" \t\n")
        tail = text[len(body):]
        if body:
            self._flush(trailing=False)
            self._print(marked(body, style, leading=not self._started, trailing=False))
            self._started = True
        if tail:
            self._held.append((style, tail))

    def _flush(self, *, trailing: bool) -> None:
        held, self._held = self._held, []
        for i, (style, text) in enumerate(held):
            self._print(marked(text, style, leading=not self._started and i == 0,
                               trailing=trailing and i == len(held) - 1))

    def _on_TurnFinished(self, event: TurnFinished) -> None:
        self._flush(trailing=True)
        gen = event.generation
        tail = f"[{gen.stop_reason}, {len(gen.tokens)} tokens, {gen.tokens_per_second:.0f} tok/s]"
        self._print([("", "\n"), ("ansibrightblack", tail)], end="\n")
        if event.kept:
            self._print([("ansiyellow", "\n".join(wrapped(event.kept, self.columns())))], end="\n")

    def _on_RawPrompt(self, event: RawPrompt) -> None:
        fragments = []
        for i, (piece, role, special) in enumerate(event.pieces):
            style = role_style(role)
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
            style = f"{role_style(row.role)} {shade(row.entropy_bits, self.depth)}"
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
            note = (" ⟨interrupted⟩" if row.interrupted else "") + "".join(f" ⟨{x}⟩" for x in row.extras)
            room = max(20, self.columns() - 16 - len(alt))
            text = one_line(row.content, room)
            if note:
                note = one_line(note, max(12, room - len(text)))
            self._print([(MARK, f"{row.index:3d}{'*' if row.generated else ' '} "),
                         ("bold " + role_style(row.role), f"{row.role:9}"),
                         (MARK, alt), ("", " "), ("", text), (MARK, note)], end="\n")
        if not event.rows:
            self._print([(MARK, "(empty conversation)")], end="\n")

    def _on_MessageShown(self, event: MessageShown) -> None:
        row = event.row
        alt = f" [{row.alternative}/{row.alternatives}]" if row.alternatives > 1 else ""
        self._print([(MARK, f"{row.index}{'*' if row.generated else ''} "),
                     ("bold " + role_style(row.role), row.role), (MARK, alt),
                     (MARK, " (interrupted)" if row.interrupted else "")], end="\n")
        self._print(marked(row.content) if row.content else [(MARK, "(no text)")], end="\n")
        for extra in row.extras:
            self._print([(MARK, "+ "), ("", extra)], end="\n")

    def columns(self) -> int:
        """The terminal's width (the output's, when it knows it)."""
        size = getattr(self.output, "get_size", None)
        if size is not None:
            try:
                return max(20, size().columns)
            except OSError:
                pass
        return shutil.get_terminal_size((100, 24)).columns

    def _on_EditRequest(self, event: EditRequest) -> None:
        self.edit_requests.append(event)

    def _on_Candidates(self, event: Candidates) -> None:
        """Every candidate whole, in columns when the terminal is wide enough; with `pick`, the
        REPL then asks for the key of the one to keep."""
        for line in layout(event.rows, event.of, self.columns(), role_style(event.role)):
            self._print(line, end="\n")
        if event.pick:
            self.pick_requests.append(event)

    def _on_StepRequest(self, event: StepRequest) -> None:
        """The REPL walks the turn after the command (harness.repl.stepper)."""
        self.step_requests.append(event)

    def _on_Legend(self, event: Legend) -> None:
        line: list[tuple[str, str]] = [("bold", "roles:")]
        for role in event.roles:  # as many to a line as the terminal holds
            if sum(len(t) for _, t in line) + 2 + len(role) > self.columns():
                self._print(line, end="\n")
                line = [("", "      ")]
            line += [("", "  "), (role_style(role), role)]
        self._print(line, end="\n")
        self._print([("", "entropy (shading): "), ("", legend(self.depth))], end="\n")
        self._print([("", "blanks: "), (MARK, "·"), ("", " a space at an edge (start, end, line end), "),
                     (MARK, "→"), ("", " a tab there, "), (MARK, "↵"), ("", " a newline")], end="\n")
        self._print([("", "marks: "), ("reverse", "special token"), ("", "  "),
                     ("italic underline", "given text"), ("", " (prefill, impersonate, continue, replayed)")],
                    end="\n")  # lines under 80 columns: a terminal would break them inside words
        self._print([("", "       "), (MARK, "[role]"), ("", " where the role changes; ⟨k⟩ token k in /tokens")],
                    end="\n")

    def _on_EntropyReport(self, event: EntropyReport) -> None:
        for scope, roles in event.rows.items():
            self._print([("bold", scope)], end="\n")
            for role, s in roles.items():
                ent, sur, ppl = s["mean_entropy_bits"], s["mean_surprisal_bits"], s["perplexity"]
                bounds = s.get("entropy_bounds_bits")  # a server's top-k: what H may be
                within = "" if not bounds else f" in [{_n(bounds[0]).strip()}, {_n(bounds[1]).strip()}]"
                text = (f"  {role:10} {s['tokens']:5d} tok  H {_n(ent)}{within}  surprisal {_n(sur)}  ppl {_n(ppl)}")
                self._print([(role_style(role), text)], end="\n")


def wrapped(line: str, width: int) -> list[str]:
    """`line` broken between words to fit `width`, continuation lines indented under its text
    (a table row's second column, or two past its own indent)."""
    if len(line) <= width:
        return [line]
    column = re.search(r"\S(\s{2,})(?=\S)", line)
    indent = column.end() if column and column.end() < width // 2 else len(line) - len(line.lstrip()) + 2
    return textwrap.wrap(line, width, subsequent_indent=" " * indent, break_on_hyphens=False,
                         drop_whitespace=True) or [line]


def _n(x: float | None) -> str:
    return "  -   " if x is None else f"{x:6.3f}"
