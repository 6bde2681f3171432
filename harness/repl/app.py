"""The prompt_toolkit REPL: read a line, hand it to the session, let the display render events.

Ctrl-C at the prompt clears the line; Ctrl-C during generation stops the generation (the
partial turn is kept and marked interrupted), not the app; Ctrl-D or /quit leaves after the
session is saved. Enter sends and Alt-Enter / Esc-Enter inserts a newline (``/set multiline
on`` swaps them); ``/set vi on`` switches to Vi editing. Ctrl-R searches the history.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.filters import Condition, is_searching
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings

from harness.chat.commands.edit import set_content
from harness.chat.dispatch import handle as handle_line
from harness.chat.events import EditRequest, Notice
from harness.chat.session import Session
from harness.interrupt import sigint_flag
from harness.repl.completer import HarnessCompleter
from harness.repl.display import Display
from harness.repl.history import TolerantFileHistory
from harness.repl.toolbar import toolbar_fragments
from harness.repl.typeahead import held_keys, next_input

USER_PROMPT = [("ansigreen bold", "user> ")]


def make_key_bindings(ui: Mapping[str, Any]) -> KeyBindings:
    """Enter / Alt-Enter: send or newline, as the `multiline` setting says."""
    bindings = KeyBindings()
    handle = bindings.add
    multiline = Condition(lambda: bool(ui.get("multiline")))

    @handle("enter", filter=~is_searching)
    def _enter(event) -> None:
        """Enter sends (inserts a newline when multiline is on)."""
        if ui.get("multiline"):
            event.current_buffer.insert_text("\n")
        else:
            event.current_buffer.validate_and_handle()

    @handle("escape", "enter", filter=~is_searching)
    def _alt_enter(event) -> None:
        """Alt-Enter / Esc-Enter inserts a newline (sends when multiline is on)."""
        if multiline():
            event.current_buffer.validate_and_handle()
        else:
            event.current_buffer.insert_text("\n")

    return bindings


def build_prompt_session(session: Session, *, input: Any = None, output: Any = None,
                         history_path: str | None = None, emit: Any = None) -> PromptSession:
    def history_failed(exc: OSError) -> None:
        if emit is not None:
            emit(Notice(f"cannot write the input history ({exc.strerror or exc}); "
                        "it is kept in memory for this session", "error"))

    history = TolerantFileHistory(history_path, history_failed) if history_path else InMemoryHistory()
    return PromptSession(
        message=USER_PROMPT, bottom_toolbar=lambda: toolbar_fragments(session),
        key_bindings=make_key_bindings(session.prefs), history=history, input=input, output=output,
        multiline=True, completer=HarnessCompleter(), complete_while_typing=False,
        enable_history_search=False,
    )


def run_repl(session: Session, *, input: Any = None, output: Any = None,
             history_path: str | None = None, display: Display | None = None) -> int:
    display = display or Display(output, session.prefs)
    prompt = build_prompt_session(session, input=input, output=output, history_path=history_path,
                                  emit=display.emit)
    terminal = sys.stdin.fileno() if input is None and sys.stdin.isatty() else None
    typed = ""
    try:
        while True:
            text, send, typed = next_input(typed)
            try:  # the label every time: an /edit prompt must not leave its label behind
                line = prompt.prompt(USER_PROMPT, default=text, accept_default=send,
                                     vi_mode=bool(session.prefs.get("vi")))
            except KeyboardInterrupt:
                typed = ""
                continue  # Ctrl-C at the prompt: the line is cleared
            except EOFError:
                break
            try:
                with sigint_flag() as stop, held_keys(terminal) as held:
                    handle_line(session, line, display.emit, stop)
            except EOFError:
                break
            finally:
                typed += "".join(held)
            _answer_edits(session, prompt, display)
    finally:
        session.save(display.emit)
        _say_where_saved(session, display)
    return 0


def _say_where_saved(session: Session, display: Display) -> None:
    saved = session.io.autosave
    if saved is not None and saved.path.exists():
        display.emit(Notice(f"session saved to {saved.path}; resume: harness chat --resume {saved.id}"))


def _answer_edits(session: Session, prompt: PromptSession, display: Display) -> None:
    """/edit N asked for text: a prompt prefilled with the message, or $EDITOR."""
    while display.edit_requests:
        request = display.edit_requests.pop(0)
        try:
            text = _in_editor(request) if request.editor else prompt.prompt(
                [("ansiyellow bold", f"edit {request.index}> ")], default=request.content,
                vi_mode=bool(session.prefs.get("vi")))
        except (KeyboardInterrupt, EOFError):
            display.emit(Notice("edit cancelled"))
            continue
        if text is None:
            display.emit(Notice("edit cancelled (the editor failed)", "error"))
            continue
        set_content(session, request.index, text, display.emit)
        session.save(display.emit)


def _in_editor(request: EditRequest) -> str | None:
    """The message edited in $VISUAL / $EDITOR (vi when neither is set); None if it failed."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False, encoding="utf-8") as handle:
        handle.write(request.content)
    try:
        if subprocess.call([*shlex.split(editor), handle.name]) != 0:
            return None
        with open(handle.name, encoding="utf-8") as edited:
            text = edited.read()
        return text[:-1] if text.endswith("\n") and not request.content.endswith("\n") else text
    except OSError:
        return None
    finally:
        os.unlink(handle.name)
