"""The refusal detector and the summary's refusal rate per condition."""

from __future__ import annotations

import pytest

from harness.experiment.summary import condition_refusals
from harness.stats.refusal import is_refusal, refusal_rate


@pytest.mark.parametrize(("text", "refused"), [
    ("I'm sorry, but I can't help with that.", True),
    ("I cannot assist with picking locks.", True),
    ("As an AI, I do not have opinions.", True),
    ("I’m unable to do that.", True),  # a typographic apostrophe
    ("Sure, here is a short essay about the sea.", False),
    ("Here are three tips. " * 12 + "I'm sorry if this is long.", False),  # late apologies do not count
])
def test_is_refusal(text, refused):
    assert is_refusal(text) is refused


def test_refusal_rate_per_conversation_then_mean():
    assert refusal_rate(["I cannot.", "Sure.", "Sure."]) == pytest.approx(1 / 3)
    out = condition_refusals([("c", "a", "I cannot."), ("c", "a", "Sure."), ("c", "b", "Sure.")])
    assert out["c"]["rate"] == pytest.approx((0.5 + 0.0) / 2) and out["c"]["conversations"] == 2
