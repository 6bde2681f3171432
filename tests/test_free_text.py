"""One rule for typed text (issue 23, finding 3): free text is sent as typed, trailing blanks
and newlines included; one quoted word is unquoted, and inside double quotes \\n \\t \\r \\" \\\\
are escapes. Asserted on the saved session and the prompt the model was given."""

from __future__ import annotations

import pytest

from harness.chat.slash import free_text, parse_line, split_words, take_words
from tests.support.replkit import drive, fake_session, notices, saved


@pytest.mark.parametrize(("line", "expected"), [
    ("/prefill Sure, ", ("prefill", "Sure, ")),
    ("/prefill   Sure,\n", ("prefill", "Sure,\n")),
    ("/PREFILL\tx", ("prefill", "x")),
    ("/undo", ("undo", "")),
    ("hello \n", (None, "hello \n")),
    ("//x ", (None, "/x ")),
])
def test_a_line_keeps_what_follows_the_command_as_typed(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize(("text", "count", "expected"), [
    ('"<think>\\n"', 0, ([], "<think>\n")),
    ('"a\\tb\\\\c\\"d"  ', 0, ([], 'a\tb\\c"d')),  # blanks after the closing quote are not text
    ("'<think>\\n'", 0, ([], "<think>\\n")),  # single quotes: no escapes
    ("<think>\\n", 0, ([], "<think>\\n")),  # unquoted: as typed
    ("1 user  two ", 2, (["1", "user"], "two ")),
    ('1 user " two "', 2, (["1", "user"], " two ")),
])
def test_free_text_is_as_typed_or_one_quoted_word_with_escapes(text, count, expected):
    assert take_words(text, count) == expected


def test_words_take_the_same_escapes_in_double_quotes():
    assert split_words('"\\n" 5 \'\\n\'') == ["\n", "5", "\\n"]


def test_an_escape_typed_bare_is_sent_as_typed_with_a_warning():
    assert free_text("<think>\\n", 0)[2] is not None
    assert free_text('"<think>\\n"', 0)[2] is None


@pytest.mark.parametrize(("typed", "given"), [
    ('/prefill "<think>\\n"\r', "<think>\n"),
    ("/prefill Sure, \r", "Sure, "),
    ('/prefill " Sure"\r', " Sure"),
])
def test_prefill_sends_exactly_the_text_given(tmp_path, typed, given):
    session = fake_session("Ok<|im_end|>", tmp_path=tmp_path, max_tokens=3)
    drive(session, "Hi\r" + typed)
    prompt = session.transcript[-1].prompt
    assert prompt.endswith("<|im_start|>assistant\n" + given)
    assert saved(tmp_path)["generations"][-1]["text"] == "Ok"


def test_prefill_of_a_bare_backslash_n_is_sent_as_typed_and_says_so(tmp_path):
    session = fake_session("Ok<|im_end|>", tmp_path=tmp_path, max_tokens=3)
    recorder = drive(session, "Hi\r/prefill <think>\\n\r")
    assert session.transcript[-1].prompt.endswith("<think>\\n")
    assert any("sent as typed" in n for n in notices(recorder, "warning"))


def test_a_message_ending_in_a_newline_typed_with_alt_enter_keeps_it(tmp_path):
    session = fake_session("Ok<|im_end|>", tmp_path=tmp_path, max_tokens=3)
    drive(session, "Two lines\x1b\rand a newline\x1b\r\r")
    assert saved(tmp_path)["messages"][0]["content"] == "Two lines\nand a newline\n"
    assert "and a newline\n<|im_end|>" in session.transcript[-1].prompt
