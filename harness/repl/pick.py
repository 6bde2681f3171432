"""A key to keep one candidate: after /retry N or a bare /swipe, the REPL asks which candidate to
keep. A candidate's number keeps it (at once when no other number starts with the digits typed;
else Enter); Enter alone, Esc or Ctrl-C keep the chosen one; any other key ends the question and
goes to the next prompt, so typing on is never lost — nor are the keys read together with the one
that ends the question (a line typed ahead arrives in one read, just as the question opens)."""

from __future__ import annotations

from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.keys import Keys

from harness.chat.events import Candidates


def _typed(key: object, data: str) -> str:
    """What a key adds to the text typed ahead: Enter ends a line; other keys that are not text
    (arrows, control keys) add nothing."""
    if key in (Keys.ControlM, Keys.ControlJ):
        return "\n"
    return data if len(data) == 1 and data.isprintable() else ""


def _end(event: KeyPressEvent, result: int | None, carried: list[str]) -> None:
    """End the question; the keys read with this one and not handled yet go to the next prompt."""
    queue = event.app.key_processor.input_queue
    carried.extend(_typed(press.key, press.data) for press in queue)
    queue.clear()
    event.app.exit(result=result)


def pick_bindings(numbers: list[int], carried: list[str]) -> KeyBindings:
    bindings = KeyBindings()
    handle = bindings.add

    @handle("<any>")
    def _other(event) -> None:
        """A key that is no candidate's number: no pick; the key goes to the next prompt."""
        carried.append(_typed(event.key_sequence[0].key, event.data))
        _end(event, None, carried)

    def digit(key: str):
        def _digit(event) -> None:
            """A digit of a candidate's number: keep it once no other number begins so."""
            event.current_buffer.insert_text(key)
            typed = event.current_buffer.text
            if int(typed) in numbers and not any(str(n).startswith(typed) and str(n) != typed for n in numbers):
                _end(event, int(typed), carried)
        return _digit

    for key in "0123456789":
        handle(key)(digit(key))

    @handle("enter")
    def _enter(event) -> None:
        """Enter: the number typed, or (nothing typed) keep the chosen one."""
        typed = event.current_buffer.text
        _end(event, int(typed) if typed.isdigit() and int(typed) in numbers else None, carried)

    @handle("escape", eager=True)
    @handle("c-c")
    def _keep(event) -> None:
        """Esc / Ctrl-C: keep the chosen one."""
        _end(event, None, carried)

    return bindings


def ask_pick(request: Candidates, *, input: Any = None, output: Any = None) -> tuple[int | None, str]:
    """(the number of the candidate to keep, None for the chosen one; a key typed that was not
    an answer, for the next prompt)."""
    numbers = [row.number for row in request.rows]
    chosen = next((row.number for row in request.rows if row.chosen), None)
    carried: list[str] = []
    keep = f", Enter keeps {chosen}" if chosen is not None else ", Enter keeps none"
    label = [("ansiyellow bold", f"keep which? {'/'.join(map(str, numbers))}{keep}> ")]
    session: PromptSession = PromptSession(input=input, output=output, key_bindings=pick_bindings(numbers, carried))
    try:
        number = session.prompt(label)
    except (KeyboardInterrupt, EOFError):
        number = None
    return number, "".join(carried)
