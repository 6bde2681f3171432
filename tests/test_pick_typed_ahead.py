"""The key that keeps a candidate after /retry N: keys that arrive together (a line typed ahead,
read in one go just as the question opens) end the question once, and every key after the one
that ended it goes on to the next prompt: none is lost and none ends it twice."""

from __future__ import annotations

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from harness.chat.events import CandidateRow, Candidates
from harness.repl.pick import ask_pick


def request(n: int = 3) -> Candidates:
    rows = tuple(CandidateRow(i, f"text {i}", (), "eos", 3, 1.0, i, i == 1) for i in range(1, n + 1))
    return Candidates(message=2, role="assistant", rows=rows, of=n, pick=True)


def ask(keys: str, n: int = 3) -> tuple[int | None, str]:
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        return ask_pick(request(n), input=pipe, output=DummyOutput())


def test_a_line_typed_ahead_is_carried_whole_and_keeps_no_candidate():
    assert ask("hello there\r") == (None, "hello there\n")


def test_a_number_then_more_keys_keeps_that_candidate_and_carries_the_rest():
    assert ask("2/show 2\r") == (2, "/show 2\n")


def test_enter_then_a_line_keeps_the_chosen_one_and_carries_the_line():
    assert ask("\r/undo\r") == (None, "/undo\n")


def test_digits_after_the_question_ended_are_carried_not_typed_into_it():
    assert ask("x12\r") == (None, "x12\n")


def test_keys_that_are_not_text_end_the_question_but_add_nothing():
    assert ask("\x1b[Ahi\r") == (None, "hi\n")  # an arrow key, then a line
    assert ask("3") == (3, "")
