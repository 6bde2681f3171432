"""`/retry N` and `/swipe next N`: N candidates decoded together, each kept as an alternative."""

from __future__ import annotations

import pytest

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.events import Notice
from harness.chat.session import Session
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template


def session_on(backend: FakeBackend, **params) -> Session:
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    return Session(bench, params=SamplingParams(**{"max_tokens": 12, "temperature": 1.0, "seed": 5, **params}))


def test_retry_n_adds_n_candidates_in_one_batch():
    backend = FakeBackend("Hi!<|im_end|>", confidence=1.0)
    session = session_on(backend)
    seen: list = []
    handle(session, "Hello", seen.append)
    handle(session, "/retry 4", seen.append)
    assert len(session.tree.siblings(1)) == 5 and len(session.transcript) == 5
    assert max(backend._sequences.step_sizes) == 4  # the 4 decoded together
    assert [e.text for e in seen if isinstance(e, Notice)][-1].startswith("message 1: candidate 5 of 5")
    # a retry under a fixed seed moves the seed on (issue 14): the batch runs seeds 6, 7, 8, 9
    seeds = [session.tree.nodes[node].meta["seed"] for node in session.tree.siblings(1)]
    assert seeds == [5, 6, 7, 8, 9]
    texts = [session.transcript[i].text for i in range(1, 5)]
    assert len(set(texts)) > 1


def test_swipe_next_n_past_the_last_generates_n():
    session = session_on(FakeBackend("Hi!<|im_end|>", confidence=1.0))
    handle(session, "Hello", lambda e: None)
    handle(session, "/swipe next 3", lambda e: None)
    assert len(session.tree.siblings(1)) == 4


@pytest.mark.parametrize("line", ["/retry 0", "/retry x", "/swipe prev 2"])
def test_bad_counts_are_errors(line):
    session = session_on(FakeBackend("Hi!<|im_end|>"))
    handle(session, "Hello", lambda e: None)
    seen: list = []
    handle(session, line, seen.append)
    assert any(isinstance(e, Notice) and e.level == "error" for e in seen)
