"""/step: a generated turn walked with the arrow keys, mikupad-style without a mouse.

Left / Right move between tokens (Home / End: the first / last), Up / Down between the
alternatives at that token; Enter branches from the selected alternative (the REPL sends
``/branch K RANK`` as a typed line, so the change goes through the command that owns it); Esc,
Ctrl-C or q leave. The view is three lines: the turn around the token (the token reversed), the
token with its entropy and probability, and its alternatives with the selected one marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.key_binding import KeyBindings

from harness.chat.events import StepRequest
from harness.repl.palette import role_style
from harness.repl.whitespace import MARK, one_line

CONTEXT = 30  # characters of the turn shown on each side of the token


@dataclass
class Cursor:
    """Where the walk is: token `k`, alternative `rank` (0: none selected)."""

    request: StepRequest
    k: int = 0
    rank: int = 0

    def move(self, step: int) -> None:
        self.k = max(0, min(len(self.request.tokens) - 1, self.k + step))
        self.rank = 0

    def choose(self, step: int) -> None:
        self.rank = max(0, min(len(self.request.options[self.k]), self.rank + step))


def view(cursor: Cursor, width: int = 80) -> list[tuple[str, str]]:
    """The three lines for where `cursor` is (fragments)."""
    request, k = cursor.request, cursor.k
    pieces = [row.piece for row in request.tokens]
    token = request.tokens[k]
    before = one_line("".join(pieces[:k]), 10 ** 6)[-CONTEXT:]
    after = one_line("".join(pieces[k + 1:]), 10 ** 6)[:CONTEXT]
    line: list[tuple[str, str]] = [(MARK, before), ("reverse " + role_style(token.role), one_line(token.piece, 40)),
                                   (MARK, after), ("", "\n")]
    entropy = f"{token.entropy_bits:.2f} bits" if token.entropy_bits is not None else "-"
    came = f"p {token.probability:.3f}" if token.probability is not None else ""
    line += [("bold", f"token {k}/{len(pieces) - 1}"), ("", f" [{token.role}] H {entropy} {came}\n")]
    options = request.options[k]
    if not options:
        line.append((MARK, "(no alternatives recorded at this token)"))
    used = 0
    for rank, piece, probability in options:
        cell = f"{rank}:{one_line(piece, 16)} {probability:.2f}  "
        if used + len(cell) > width:
            break
        used += len(cell)
        line.append(("reverse" if rank == cursor.rank else "", cell))
    return line


def step_bindings(cursor: Cursor) -> KeyBindings:
    bindings = KeyBindings()
    handle = bindings.add

    @handle("right")
    def _right(event) -> None:
        """The next token."""
        cursor.move(1)

    @handle("left")
    def _left(event) -> None:
        """The previous token."""
        cursor.move(-1)

    @handle("home")
    def _home(event) -> None:
        """The first token."""
        cursor.move(-len(cursor.request.tokens))

    @handle("end")
    def _end(event) -> None:
        """The last token."""
        cursor.move(len(cursor.request.tokens))

    @handle("down")
    def _down(event) -> None:
        """The next alternative (rank + 1)."""
        cursor.choose(1)

    @handle("up")
    def _up(event) -> None:
        """The previous alternative."""
        cursor.choose(-1)

    @handle("enter")
    def _enter(event) -> None:
        """Branch from the selected alternative (none selected: leave)."""
        event.app.exit(result=(cursor.k, cursor.rank) if cursor.rank else None)

    @handle("escape", eager=True)
    @handle("c-c")
    @handle("q")
    def _leave(event) -> None:
        """Leave without branching."""
        event.app.exit(result=None)

    @handle("<any>")
    def _other(event) -> None:
        """Any other key does nothing here."""

    return bindings


def ask_step(request: StepRequest, *, input: Any = None, output: Any = None) -> str:
    """Walk `request`'s turn; the command the walk ends in (``/branch K RANK``), or "" when it
    ends without one."""
    cursor = Cursor(request, k=len(request.tokens) - 1)
    session: PromptSession = PromptSession(input=input, output=output, key_bindings=step_bindings(cursor))
    try:
        answer = session.prompt(lambda: view(cursor) + [("ansiyellow bold", "\n← → token  ↑ ↓ alternative  "
                                                                             "Enter branches  Esc leaves> ")])
    except (KeyboardInterrupt, EOFError):
        answer = None
    if not answer:
        return ""
    k, rank = answer
    return f"/branch {k} {rank}"
