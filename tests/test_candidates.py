"""Candidates side by side (issue 23, findings 4 and 10): /retry N and /swipe show every candidate
whole with its entropy and stop reason, a key keeps one, one /undo takes the whole retry back, an
interrupted batch keeps no unfinished candidate, and a retry that leaves later messages behind
says so. Asserted on the saved session and the tree."""

from __future__ import annotations

from harness.chat.dispatch import handle
from harness.chat.events import CandidateRow, Candidates, MessageList
from harness.repl.candidates import GAP, header, header_lines, layout
from tests.support.replkit import drive, fake_session, notices, saved

SCRIPT = "Hi there, how are you doing today?<|im_end|>"


def sampled(tmp_path, **params):
    sampling = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 7, "max_tokens": 8, **params}
    return fake_session(SCRIPT, tmp_path=tmp_path, **sampling)


def candidate_texts(session, index: int = 1) -> list[str]:
    return [session.tree.nodes[i].message.text for i in session.tree.siblings(index)]


def test_retry_3_shows_three_whole_candidates_and_one_undo_removes_them(tmp_path):
    session = sampled(tmp_path)
    recorder = drive(session, "Hello\r/retry 3\r\r")  # Enter at the key prompt keeps the chosen one
    shown = recorder.of(Candidates)[-1]
    assert [r.number for r in shown.rows] == [2, 3, 4] and shown.of == 4 and shown.pick
    assert [r.text for r in shown.rows] == candidate_texts(session)[1:]  # whole, not a preview
    assert all(r.stop_reason and r.tokens and r.mean_entropy_bits is not None for r in shown.rows)
    assert [r.seed for r in shown.rows] == [8, 9, 10]
    assert any("seed 7 -> 8..10 for these 3 candidates" in n for n in notices(recorder))
    assert len(saved(tmp_path)["tree"]["nodes"]) == 6  # root, user, four candidates
    drive(session, "/undo\r")
    assert len(session.tree.siblings(1)) == 1 and saved(tmp_path)["messages"][1]["content"] == candidate_texts(session)[0]


def test_a_key_keeps_a_candidate_within_the_same_undo_step(tmp_path):
    session = sampled(tmp_path)
    drive(session, "Hello\r/retry 3\r2")
    texts = candidate_texts(session)
    assert saved(tmp_path)["messages"][1]["content"] == texts[1]  # candidate 2 kept
    drive(session, "/undo\r")
    assert len(session.tree.siblings(1)) == 1


def test_typing_on_at_the_key_prompt_is_not_lost(tmp_path):
    session = sampled(tmp_path)
    recorder = drive(session, "Hello\r/retry 2\r/messages\r")
    assert recorder.of(MessageList)  # the slash went on to the next prompt
    assert saved(tmp_path)["messages"][1]["content"] == candidate_texts(session)[-1]


def test_swipe_shows_candidates_whole(tmp_path):
    session = sampled(tmp_path)
    recorder = drive(session, "Hello\r/retry 2\r\r/swipe 1\r/swipe\r\r")
    one, every = recorder.of(Candidates)[-2:]
    assert [r.number for r in one.rows] == [1] and one.rows[0].text == candidate_texts(session)[0]
    assert [r.number for r in every.rows] == [1, 2, 3] and [r.chosen for r in every.rows] == [True, False, False]


def test_an_interrupted_batch_keeps_no_unfinished_candidate(tmp_path):
    session = sampled(tmp_path, max_tokens=30)
    handle(session, "Hello", lambda e: None)
    steps = iter(range(1000))
    seen: list = []
    handle(session, "/retry 3", seen.append, should_stop=lambda: next(steps) >= 2)
    assert len(session.tree.siblings(1)) == 1 and len(saved(tmp_path)["tree"]["nodes"]) == 3
    assert any("3 unfinished candidate(s) not kept" in getattr(e, "text", "") for e in seen)


def test_a_retry_that_leaves_later_messages_behind_says_so(tmp_path):
    script = "Hi!<|im_end|>\n<|im_start|>user\nTell me more<|im_end|>"
    session = fake_session(script, tmp_path=tmp_path, eos="continue", max_tokens=40)
    recorder = drive(session, "Hello\r/adopt\r/retry 3\r\r")  # the model's user turn adopted, then a retry
    warning = [n for n in notices(recorder, "warning") if "stays with candidate 1" in n]
    assert warning and "message 1 is now candidate 4 of 4" in warning[0] and "/swipe 1 --at 1" in warning[0]
    assert len(saved(tmp_path)["messages"]) == 2
    drive(session, "/swipe 1 --at 1\r")
    assert saved(tmp_path)["messages"][-1]["content"] == "Tell me more"  # the adopted one is back


ROWS = tuple(CandidateRow(n, f"candidate {n} says " + "word " * 30 + "\n", (), "eos", 9, 1.5, n, n == 3)
             for n in (1, 2, 3))


def test_wide_terminals_get_columns_and_narrow_ones_a_stack():
    wide = layout(ROWS, 3, 160, "ansicyan")
    assert all(sum(len(t) for _, t in line) <= 160 for line in wide)
    assert all(GAP in "".join(t for _, t in line) for line in wide)
    narrow = layout(ROWS, 3, 80, "ansicyan")
    assert not any(GAP in "".join(t for _, t in line) for line in narrow)
    heads = ["".join(t for _, t in line) for line in narrow if line and line[0][0] == "bold"]
    assert heads == ["[1/3] · seed 1 · eos, 9 tok · H̄ 1.50 bits", "[2/3] · seed 2 · eos, 9 tok · H̄ 1.50 bits",
                     "[3/3] chosen · seed 3 · eos, 9 tok · H̄ 1.50 bits"]
    assert all(sum(len(t) for _, t in line) <= 80 for line in narrow)  # stacked lines break between words
    assert all("".join(t for _, t in line).split(" ")[-1] in ("word", "word·↵", "")
               for line in narrow if line and line[0][0] != "bold")
    drawn = " ".join("".join(t for _, t in line) for line in wide)
    assert drawn.count("word") == 90 and drawn.count("word·↵") == 3  # every word, none cut; edges marked


def test_a_header_too_wide_for_its_column_breaks_between_its_parts():
    row = CandidateRow(4, "text", (), "max_tokens", 12, 4.31, 6, True)
    lines = ["".join(t for _, t in line) for line in header_lines(row, 4, 51)]
    assert lines == ["[4/4] chosen · seed 6 · max_tokens, 12 tok", "H̄ 4.31 bits"]
    assert ["".join(t for _, t in line) for line in header_lines(row, 4, 80)] == [header(row, 4)]
