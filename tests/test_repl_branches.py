"""Swipes, the token inspector, branches, edits with KV reuse, sessions and exports — driven
through the REPL with pipe input against the real SmolLM2, checking session state and the log."""

from __future__ import annotations

import json

import pytest

from harness.chat.events import Alternatives, Notice, TokenStreamed, TokenView, TurnFinished
from harness.chat.saved import SessionFile, find_session, read_session, restore
from harness.chat.session import Session
from harness.chat.session_io import SessionIO
from harness.generation.evaluation import encode_prompt
from harness.generation.settings import SamplingParams
from harness.prompt.modes import AS_IS
from harness.turn_log import TurnLog, read_log
from tests.support.replkit import drive

pytestmark = pytest.mark.model


def real_session(bench, tmp_path, autosave=None, **params) -> Session:
    settings = {"seed": 7, "temperature": 1.0, "max_tokens": 12, **params}
    return Session(bench, params=SamplingParams(**settings), io=SessionIO(TurnLog(tmp_path / "chat.jsonl"), autosave))


def test_retry_keeps_candidates_swipe_chooses_and_the_next_turn_sees_the_choice(smollm2, tmp_path):
    session = real_session(smollm2, tmp_path, seed=None)
    drive(session, "Name a fruit.\r/retry\r/retry\r/swipe 2\r")
    candidates = [session.tree.nodes[i].message.content for i in session.tree.siblings(1)]
    assert len(candidates) == 3 and len(session.transcript) == 3
    assert session.conversation.messages[1].content == candidates[1]
    drive(session, "And a vegetable?\r/swipe prev\r")  # the last message is now the new reply
    session.io.log.close()
    turns = list(read_log(tmp_path / "chat.jsonl"))
    assert len(turns) == 4
    assert turns[3]["messages_before"][1]["content"] == candidates[1]  # the chosen candidate
    assert [t["messages_before"][-1]["content"] for t in turns[:3]] == ["Name a fruit."] * 3


def test_undo_redo_over_generated_turns(smollm2, tmp_path):
    session = real_session(smollm2, tmp_path)
    drive(session, "Hi.\r/retry\r/undo\r")
    assert len(session.tree.siblings(1)) == 1
    drive(session, "/redo\r/swipe 1\r/swipe next\r")
    assert len(session.tree.siblings(1)) == 2 and len(session.transcript) == 2  # next: no new turn


def test_tokens_alts_and_branch_keep_both_branches(smollm2, tmp_path):
    session = real_session(smollm2, tmp_path, temperature=0.0, max_tokens=10)
    recorder = drive(session, "List three colors.\r/tokens\r/alts 2\r/branch 2 2\r/tokens 1\r")
    views, alts = recorder.of(TokenView), recorder.of(Alternatives)[0]
    first_done = next(i for i, e in enumerate(recorder.events) if isinstance(e, TurnFinished))
    streamed = [e for e in recorder.events[first_done:] if isinstance(e, TokenStreamed)]
    assert [e.forced for e in streamed[:4]] == [True] * 3 + [False]  # the replayed prefix is marked
    first, second = session.transcript
    assert views[0].message == 1 and len(views[0].rows) == len(first.tokens)
    assert all(r.entropy_bits is not None and r.role for r in views[0].rows)
    assert alts.position == 2 and alts.options[0][0] == 1 and len(alts.options) == 5
    assert abs(sum(p for _, _, p in alts.options) - 1) < 1  # probabilities, not logits
    # the branch: same first two tokens, the rank-2 alternative forced at token 2, then more
    assert [t.id for t in second.tokens[:2]] == [t.id for t in first.tokens[:2]]
    assert second.tokens[2].id == first.tokens[2].stats.top_ids[1]
    assert second.tokens[2].piece == alts.options[1][1]
    assert len(second.tokens) > 3
    siblings = [session.tree.nodes[i] for i in session.tree.siblings(1)]
    assert len(siblings) == 2 and [n.meta["gen"] for n in siblings] == [0, 1]
    assert session.conversation.messages[1].content == session.tree.nodes[siblings[1].id].message.content
    assert views[1].rows[2].piece == alts.options[1][1]
    session.io.log.close()
    turns = list(read_log(tmp_path / "chat.jsonl"))
    assert [t["forced_tokens"] for t in turns] == [0, 3] and turns[1]["message_index"] == 1


def test_branch_by_token_text_and_bad_alternatives(smollm2, tmp_path):
    session = real_session(smollm2, tmp_path, temperature=0.0, max_tokens=6)
    recorder = drive(session, "Say hello.\r/branch 0 Hey\r/branch 0 'no such single token'\r"
                              "/branch 99 1\r/alts x\r")
    errors = [e.text for e in recorder.of(Notice) if e.level == "error"]
    assert len(errors) == 3 and "not one token" in errors[0] and "no token 99" in errors[1]
    assert session.transcript[1].tokens[0].piece == "Hey"
    assert session.conversation.messages[1].content.startswith("Hey")


def _ten_messages() -> str:
    turns = []
    for i in range(5):
        turns.append(("user", f"Question {i}: what is {i} plus {i}? Answer briefly, please."))
        turns.append(("assistant", f"{i} plus {i} is {2 * i}. Anything else I can help with today?"))
    return json.dumps([{"role": r, "content": c} for r, c in turns])


def test_an_edit_reuses_the_kv_cache_for_the_unchanged_prefix(smollm2, tmp_path):
    messages = tmp_path / "ten.json"
    messages.write_text(_ten_messages())
    session = real_session(smollm2, tmp_path, max_tokens=2)
    drive(session, f"/load {messages}\r/reply\r")
    assert smollm2.evaluator.reused == 0 or smollm2.evaluator.reused < 5  # cold
    drive(session, "/edit 6 Question 3: what is 3 times 3? Answer briefly, please.\r/reply\r")
    prefix = smollm2.plan(session.conversation.__class__(session.conversation.messages[:6]), AS_IS)
    shared = len(encode_prompt(smollm2.backend, prefix.prompt, prefix.segments))
    assert shared - 1 <= smollm2.evaluator.reused < len(session.transcript[-1].prompt_tokens)
    assert session.conversation.messages[6].content.startswith("Question 3: what is 3 times")
    assert len(session.conversation) == 12  # the edit kept the messages after it; reply appended


def test_sessions_autosave_resume_and_export(smollm2, tmp_path, harness_home):
    session = real_session(smollm2, tmp_path, SessionFile("s1"), temperature=0.0, max_tokens=8)
    recorder = drive(session, f"Hello!\r/retry\r/sessions\r/export {tmp_path}/chat.md\r"
                              f"/export {tmp_path}/chat.json\r")
    saved = read_session(find_session("s1"))
    assert saved["messages"] == session.conversation.to_dicts()
    assert len(saved["generations"]) == 2 and saved["log"].endswith("chat.jsonl")
    assert any("s1" in e.text for e in recorder.of(Notice))
    markdown = (tmp_path / "chat.md").read_text()
    assert "## 1 · assistant (alternative 2 of 2)" in markdown and "| assistant |" in markdown
    assert json.loads((tmp_path / "chat.json").read_text())["tree"]["nodes"]

    restored = restore(read_session(find_session(None)))
    again = Session(smollm2, trees=restored.trees, transcript=restored.transcript, settings=restored.settings)
    assert again.conversation == session.conversation and len(again.tree.siblings(1)) == 2
    replay = drive(again, "/tokens\r/alts 1\r/swipe 1\r")
    assert replay.of(TokenView)[0].rows[0].piece == session.transcript[-1].tokens[0].piece
    assert replay.of(Alternatives) and again.conversation.messages[1].content == \
        session.tree.nodes[session.tree.siblings(1)[0]].message.content


def test_streaming_shows_role_switches_past_eos_as_they_happen(smollm2, tmp_path):
    session = real_session(smollm2, tmp_path, eos="continue", max_tokens=40, seed=6, temperature=0.8)
    recorder = drive(session, "Say hello in one short sentence.\r")
    streamed = [e.role for e in recorder.of(TokenStreamed) if e.role != "template"]
    assert streamed[0] == "assistant" and "user" in streamed  # the switch arrives mid-stream
    assert recorder.of(TurnFinished)[0].generation.stop_reason == "max_tokens"
    assert [m.role for m in session.conversation] == ["user", "assistant"]


def test_prefill_and_continue_turns_retry_the_way_they_were_asked(smollm2, tmp_path):
    session = real_session(smollm2, tmp_path, max_tokens=5)
    drive(session, "/insert 0 user Tell me a joke.\r/prefill Why did\r/retry\r/continue\r/retry\r")
    path = session.tree.path()
    prefills = [session.tree.nodes[i] for i in session.tree.siblings(1)]
    assert [n.meta["mode"] for n in prefills][:2] == ["prefill", "prefill"]
    assert all(n.message.content.startswith("Why did") for n in prefills)
    continued = prefills[2:]  # /continue made an alternative of the message it continued
    assert len(continued) == 2 and all(n.meta["mode"] == "continue" for n in continued)
    base = prefills[1].message.content
    assert all(n.message.content.startswith(base) and n.message.content != base for n in continued)
    assert path[1].id == continued[-1].id and len(session.transcript) == 4
    session.io.log.close()
    turns = list(read_log(tmp_path / "chat.jsonl"))
    assert turns[3]["mode"] == "continue" and turns[3]["messages_before"][-1]["content"] == base


def test_toolbar_shows_speed_context_and_role_entropy(smollm2, tmp_path):
    from harness.repl.toolbar import toolbar_fragments

    session = real_session(smollm2, tmp_path, max_tokens=4)
    drive(session, "Hi.\r")
    text = "".join(t for _, t in toolbar_fragments(session))
    used = len(smollm2.evaluator.tokens)
    assert "tok/s" in text and f"ctx {used}/{smollm2.backend.info.n_ctx}" in text and used > 10
    assert "assistant" in text and "H̄ bits" in text
