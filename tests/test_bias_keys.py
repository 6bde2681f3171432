"""Logit-bias keys: a token's text, or #ID for an id — "2" is the token that reads 2, never id 2
(issue 23, finding 2). The same keys in /bias, profiles, the API and --bias."""

from __future__ import annotations

import pytest

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.events import Notice
from harness.chat.session import Session
from harness.errors import CommandError
from harness.generation.settings import SamplingParams, bias_token_id
from harness.generation.turn import resolve_bias
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template


@pytest.mark.parametrize(("key", "expected"), [
    ("#2", 2), ("#0", 0), ("2", None), ("#", None), ("#-1", None), ("#2a", None), ("# 2", None), ("#²", None),
])
def test_only_hash_digits_name_an_id(key, expected):
    assert bias_token_id(key) == expected


def test_integer_keys_from_yaml_are_ids_and_strings_are_texts():
    params = SamplingParams().with_values({"logit_bias": {2: -1, "2": 1.5}})
    assert params.logit_bias == {"#2": -1.0, "2": 1.5}
    with pytest.raises(CommandError, match="a key must be"):
        SamplingParams().with_values({"logit_bias": {True: 1}})


def test_a_number_is_biased_as_text_and_an_id_needs_its_hash():
    backend = FakeBackend()
    assert resolve_bias(backend, {"2": -3.0, "#2": -3.0}, backend.info.n_vocab) == {ord("2"): -3.0, 2: -3.0}
    with pytest.raises(CommandError, match="no token #9999"):
        resolve_bias(backend, {"#9999": 1.0}, backend.info.n_vocab)
    with pytest.raises(CommandError, match="not exactly one token"):
        resolve_bias(backend, {"42": 1.0}, backend.info.n_vocab)  # two byte tokens


def test_bias_command_takes_text_or_id_and_lists_the_token_each_lands_on():
    backend = FakeBackend("Hi!<|im_end|>")
    session = Session(Workbench(backend, load_template("chatml")), params=SamplingParams(temperature=0, max_tokens=3))
    seen: list = []
    for line in ("/bias 2 -3", "/bias #259 -3", "/bias"):
        handle(session, line, seen.append)
    assert session.params.logit_bias == {"2": -3.0, "#259": -3.0}
    listing = [e.text for e in seen if isinstance(e, Notice)][-1]
    assert listing.splitlines()[1:] == ['  "2" = #50  -3', "  #259 '<|im_end|>'  -3"]


@pytest.mark.model
def test_on_smollm2_the_text_2_is_token_34_and_hash_2_is_im_end(smollm2):
    assert resolve_bias(smollm2.engine, {"2": -3.0, "#2": -3.0}, smollm2.info.n_vocab) == {34: -3.0, 2: -3.0}
    assert smollm2.piece_text(2) == "<|im_end|>"
