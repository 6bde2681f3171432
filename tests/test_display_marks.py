"""What the terminal shows (issue 23): blanks and newlines visible in the live view, /messages and
/show; the live view draws exactly the characters the model was given and wrote; every role has
a colour and /help colours names them; long lines wrap between words; the toolbar keeps its
entropy figures at 80 columns."""

from __future__ import annotations

import pytest
from prompt_toolkit.output import DummyOutput

from harness.chat.dispatch import handle
from harness.chat.events import (
    Legend,
    MessageRow,
    MessageShown,
    Notice,
    TokenStreamed,
    TurnFinished,
    TurnStarted,
)
from harness.generation.records import Generation
from harness.repl.display import Display, wrapped
from harness.repl.palette import ROLE_STYLES, role_style
from harness.repl.toolbar import toolbar_fragments
from harness.repl.whitespace import MARK, marked, one_line
from tests.support.replkit import drive, fake_session


class Screen(Display):
    """A display that keeps what it would print, as (style, text) fragments."""

    def __init__(self) -> None:
        super().__init__(DummyOutput(), {"shade": False})
        self.fragments: list[tuple[str, str]] = []

    def _print(self, fragments, end: str = "") -> None:
        self.fragments += list(fragments) + ([("", end)] if end else [])

    def text(self, *, marks: bool = True) -> str:
        """What was drawn; without `marks`, each mark read back as the character it stands for."""
        if marks:
            return "".join(t for _, t in self.fragments)
        back = str.maketrans({"·": " ", "→": "\t", "↵": None})
        return "".join(t.translate(back) if s == MARK and set(t) <= set("·→↵") else t for s, t in self.fragments)


def marks_of(screen: Screen) -> list[str]:
    return [t for s, t in screen.fragments if s == MARK and t and set(t) <= set("·→↵")]


def test_the_live_view_draws_the_given_and_generated_text_exactly_with_edges_marked():
    screen = Screen()
    given, pieces = "Sure, ", [" the", " end.", "\n", "\n", "  "]
    screen.emit(TurnStarted("assistant", "prefill", given=given))
    for piece in pieces:
        screen.emit(TokenStreamed(piece, "assistant", 0.0))
    gen = Generation("p", "prefill", "assistant", "".join(pieces), "eos", [])
    screen.emit(TurnFinished(gen, "assistant"))
    drawn = screen.text(marks=False)
    assert drawn.startswith("[assistant] " + given + "".join(pieces) + "\n[eos")  # every character
    assert marks_of(screen) == ["·", "↵", "↵", "··"]  # the given text's trailing blank, the newlines, the end


def test_leading_blanks_of_a_turn_are_marked_and_inner_ones_are_not():
    screen = Screen()
    screen.emit(TurnStarted("assistant", "reply"))
    for piece in ("  Hi", " there", "!"):
        screen.emit(TokenStreamed(piece, "assistant", 0.0))
    assert marks_of(screen) == ["··"]


@pytest.mark.parametrize(("text", "line"), [
    (" two  words ", "·two  words·"), ("a\nb \n", "a↵b·↵"), ("\tx", "→x"), ("", ""),
])
def test_one_line_marks_edges_and_newlines(text, line):
    assert one_line(text, 80) == line


def test_show_marks_blanks_and_lists_what_the_message_holds_besides_text():
    screen = Screen()
    row = MessageRow(2, "assistant", "", 1, 1, False, ('tool call f {"a": 1}',))
    screen.emit(MessageShown(row))
    assert "(no text)" in screen.text() and '+ tool call f {"a": 1}' in screen.text()
    assert marked("Sure, \n") == [("", "Sure,"), (MARK, "·"), (MARK, "↵"), ("", "\n")]


def test_every_role_has_a_colour_and_the_legend_names_them():
    session = fake_session()
    drive(session, "/insert 0 narrator Once upon a time\r")
    seen: list = []
    handle(session, "/help colours", seen.append)
    legend = next(e for e in seen if isinstance(e, Legend))
    assert {"reasoning", "tool_call", "tool", "narrator"} <= set(legend.roles)
    styles = [role_style(r) for r in ROLE_STYLES]
    assert all(styles) and len(set(styles)) == len(styles)
    assert role_style("narrator") and role_style("narrator") == role_style("narrator")
    screen = Screen()
    screen.emit(legend)
    assert "narrator" in screen.text() and "special token" in screen.text()
    assert max(len(x) for x in screen.text().split("\n")) <= 80  # no line a terminal breaks mid-word


def test_long_lines_wrap_between_words_under_their_text():
    from harness.chat.slash import help_text

    for line in help_text().split("\n"):
        lines = wrapped(line, 80)
        assert all(len(w) <= 80 for w in lines)
        assert " ".join(w.strip() for w in lines).split() == line.split()  # no word cut
    screen = Screen()
    screen.emit(Notice(help_text()))
    assert max(len(x) for x in screen.text().split("\n")) <= 80


def test_the_toolbar_keeps_the_entropy_figures_at_80_columns():
    session = fake_session("Hi there!<|im_end|>", max_tokens=8)
    handle(session, "Hello", lambda e: None)
    narrow = "".join(t for _, t in toolbar_fragments(session, 80))
    assert len(narrow) <= 80 and "assistant" in narrow and "H̄ bits" in narrow and "ctx" in narrow
    assert "last mode" in "".join(t for _, t in toolbar_fragments(session, 250))


def test_the_note_of_a_turn_the_model_went_past_wraps_between_words():
    session = fake_session("Hi!<|im_end|>\n<|im_start|>user\nTell me more about that<|im_end|>", eos="continue",
                           max_tokens=40)
    screen = Screen()
    handle(session, "Hello", screen.emit)
    note = screen.text().split("tok/s]\n", 1)[1].rstrip("\n").split("\n")
    assert len(note) == 2 and all(len(line) <= 80 for line in note)
    said = "only the assistant turn was kept; the model went on as user (23 chars): /adopt makes that the next user message"
    assert " ".join(note).split() == said.split()
