"""/step (issue 23): a generated turn walked with the arrow keys, and a branch from the selected
alternative — asserted on the saved session (the branch's forced tokens) and the rendered prompt."""

from __future__ import annotations

from harness.chat.events import StepRequest, TokenRow
from harness.repl.stepper import Cursor, view
from tests.support.replkit import drive, fake_session, notices, raw_prompt, saved

LEFT, DOWN, UP, ENTER, ESC = "\x1b[D", "\x1b[B", "\x1b[A", "\r", "\x1b"


def sampled(tmp_path):
    return fake_session("Hi there, how are you?<|im_end|>", tmp_path=tmp_path, temperature=1.0, top_k=0,
                        top_p=1.0, min_p=0.0, seed=5, max_tokens=8)


def test_arrows_walk_the_turn_and_enter_branches_from_the_selected_alternative(tmp_path):
    session = sampled(tmp_path)
    recorder = drive(session, "Hello\r/step\r" + LEFT + LEFT + DOWN + DOWN + ENTER)
    step = recorder.of(StepRequest)[0]
    k = len(step.tokens) - 3  # it starts at the last token; two to the left
    first, branched = saved(tmp_path)["generations"]
    ids = [t[0] for t in first["tokens"]]
    assert [t[0] for t in branched["tokens"][: k]] == ids[:k]  # the turn up to token K, replayed
    assert branched["tokens"][k][0] == first["tokens"][k][6][1]  # then the rank-2 alternative
    assert step.options[k][1][1] == session.bench.piece_text(branched["tokens"][k][0])
    nodes = saved(tmp_path)["tree"]["nodes"]
    assert len([n for n in nodes if n["message"] and n["message"]["role"] == "assistant"]) == 2  # both kept
    assert saved(tmp_path)["messages"][1]["content"] in raw_prompt(session)  # the branch is what comes next


def test_escape_leaves_without_changing_anything(tmp_path):
    session = sampled(tmp_path)
    recorder = drive(session, "Hello\r/step\r" + LEFT + DOWN + ESC)
    assert recorder.of(StepRequest) and len(saved(tmp_path)["generations"]) == 1
    assert not notices(recorder, "error")


def test_enter_with_no_alternative_selected_branches_nothing(tmp_path):
    session = sampled(tmp_path)
    drive(session, "Hello\r/step\r" + LEFT + DOWN + UP + ENTER)
    assert len(saved(tmp_path)["generations"]) == 1


def test_the_view_marks_the_token_and_the_selected_alternative():
    rows = tuple(TokenRow(p, "assistant", 1.5, 0.5, False) for p in ("Hi", " there", ","))
    request = StepRequest(1, rows, (((1, "Hi", 0.9),), ((1, " there", 0.6), (2, " you", 0.3)), ()))
    cursor = Cursor(request, k=2)
    cursor.move(-1)
    cursor.choose(2)
    cursor.choose(5)  # stays on the last alternative
    fragments = view(cursor)
    assert ("reverse", "2:·you 0.30  ") in fragments and "token 1/2" in "".join(t for _, t in fragments)
    assert any(style.startswith("reverse") and text == "·there" for style, text in fragments)
    cursor.move(1)
    assert cursor.rank == 0 and "(no alternatives" in "".join(t for _, t in view(cursor))
