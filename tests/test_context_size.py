"""A context llama.cpp cannot hold never reaches it (issue 23, finding 5): `/set n_ctx 10` then a
message is a one-line error and the REPL goes on; the context is what was asked for."""

from __future__ import annotations

import pytest

from harness.chat.dispatch import handle
from harness.chat.events import Notice, TurnFinished
from harness.chat.session import Session
from harness.errors import ContextOverflowError
from harness.generation.open import open_workbench
from harness.generation.settings import SamplingParams

pytestmark = pytest.mark.model


def _opened(**changes):
    options = {"model": "smollm2", "template": "gguf", "n_ctx": 512, "threads": 2}
    return open_workbench(**{**options, **changes})


@pytest.mark.parametrize("n_ctx", [10, 20, 300])
def test_the_context_is_what_was_asked_and_a_long_prompt_is_an_error_not_a_crash(n_ctx):
    from harness.models.registry import open_backend

    backend = open_backend("smollm2", n_ctx=n_ctx, n_threads=2)
    try:
        assert backend.info.n_ctx == n_ctx  # llama.cpp pads to 256; harness uses what was asked
        tokens = backend.tokenize("word " * n_ctx)[: n_ctx - 1]
        for start in range(0, len(tokens), 8):  # llama.cpp's batch is at most n_ctx here
            logits = backend.decode(tokens[start:start + 8], all_logits=False)
        assert logits.shape[-1] == backend.info.n_vocab
        with pytest.raises(ContextOverflowError):
            backend.decode(tokens[:2], all_logits=False)
    finally:
        backend.close()


def test_set_n_ctx_10_then_a_message_is_one_line_and_the_session_goes_on():
    session = Session(_opened(), params=SamplingParams(temperature=0, max_tokens=3),
                      loader=lambda model, template, **changes: _opened(**changes))
    seen: list = []
    handle(session, "/set n_ctx 10", seen.append)
    handle(session, "/set n_ctx", seen.append)
    handle(session, "hi", seen.append)
    errors = [e.text for e in seen if isinstance(e, Notice) and e.level == "error"]
    assert len(errors) == 1 and "\n" not in errors[0] and "context holds 10" in errors[0]
    assert any(isinstance(e, Notice) and e.text == "n_ctx = 10" for e in seen)
    assert len(session.conversation) == 0  # the message whose turn failed is taken back
    handle(session, "/set n_ctx 100000", seen.append)
    assert "trained on" in seen[-1].text and session.bench.info.n_ctx == 10
    handle(session, "/set n_ctx 256", seen.append)
    handle(session, "hi", seen.append)
    assert isinstance(seen[-1], TurnFinished) and len(session.conversation) == 2
