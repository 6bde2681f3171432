"""The Python API on the fake backend (fast): settings checked as profiles check them, candidates
decoded together, defaults merged into each call, and a lifecycle that never uses a closed model.
tests/test_api.py runs the same surface on the real SmolLM2."""

from __future__ import annotations

import math
import threading

import pytest

import harness
from harness.api import Model
from harness.generation.settings import SamplingParams, merged_sampling
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template
from tests.support.guarded import GuardedBackend

MESSAGES = [{"role": "user", "content": "Hello"}]
SCRIPT = "Hi there, how are you today?<|im_end|>"


def fake_model(script: str = SCRIPT, *, decode_seconds: float = 0.0, **defaults) -> Model:
    backend = GuardedBackend(script, decode_seconds=decode_seconds)
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))
    return Model(bench, defaults=merged_sampling(SamplingParams(temperature=0, max_tokens=40), defaults))


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "harness stream"]


# -- values ------------------------------------------------------------------------------------
def test_seed_minus_one_is_a_random_seed():
    with fake_model() as m:
        assert m.generate(MESSAGES, seed=-1).seed is None
        assert m.sampling(seed=-1).seed is None and m.sampling(seed=None).seed is None


@pytest.mark.parametrize("settings,field", [
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": "0.5"}, "temperature"),
    ({"logit_bias": {"a": True}}, "logit_bias.a"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"top_p": math.nan}, "top_p"),
    ({"seed": "x"}, "seed"),
    ({"stop": 5}, "stop"),
    ({"eos": "sometimes"}, "eos"),
    ({"temprature": 0.5}, "temprature"),
])
def test_bad_settings_are_harness_errors_naming_the_field(settings, field):
    with fake_model() as m:
        with pytest.raises(harness.HarnessError) as err:
            m.generate(MESSAGES, **settings)
        assert err.value.field == field
        with pytest.raises(harness.HarnessError):
            m.stream(MESSAGES, **settings)


@pytest.mark.parametrize("call,field", [
    (lambda m: m.render(None), "messages"),
    (lambda m: m.render("Hello"), "messages"),
    (lambda m: m.generate(MESSAGES, mode="shout"), "mode"),
    (lambda m: m.generate(MESSAGES, text=3), "text"),
    (lambda m: m.generate(MESSAGES, n=0), "n"),
    (lambda m: m.generate(MESSAGES, n=True), "n"),
    (lambda m: m.score(None), "messages"),
])
def test_wrong_arguments_to_calls_are_harness_errors(call, field):
    with fake_model() as m:
        with pytest.raises(harness.HarnessError) as err:
            call(m)
        assert err.value.field == field


@pytest.mark.parametrize("options,field", [
    ({"model": 5}, "model"),
    ({"variables": "x"}, "variables"),
    ({"context_overflow": "zzz"}, "context_overflow"),
    ({"n_ctx": "big"}, "n_ctx"),
    ({"threads": 0}, "threads"),
    ({"literal_content": "yes"}, "literal_content"),
    ({"template": 3}, "template"),
    ({"temperature": "hot"}, "temperature"),
    ({"profile": 7}, "profile"),
])
def test_wrong_arguments_to_open_are_harness_errors_before_anything_loads(options, field):
    with pytest.raises(harness.HarnessError) as err:
        harness.open(**options)
    assert err.value.field == field
    with pytest.raises(harness.HarnessError):
        Model(fake_model().bench, context_overflow="zzz")


def test_render_without_a_model_needs_a_template():
    plan = harness.render(MESSAGES, template="chatml")
    assert plan.prompt.endswith("<|im_start|>assistant\n")
    with pytest.raises(harness.HarnessError) as err:
        harness.render(MESSAGES)
    assert err.value.field == "template"


# -- results -----------------------------------------------------------------------------------
def test_n_candidates_are_decoded_together_with_moving_seeds():
    with fake_model(temperature=1.0) as m:
        results = m.generate(MESSAGES, n=3, seed=7, max_tokens=6)
        assert isinstance(results, list) and len(results) == 3
        assert [r.seed for r in results] == [7, 8, 9]
        assert max(m.bench.backend._sequences.step_sizes) == 3  # one decode held all three
        one = m.generate(MESSAGES, seed=8, max_tokens=6, n=1)
        assert len(one) == 1 and one[0].seed == 8


def test_stop_reason_is_typed_and_to_dict_survives_close():
    with fake_model() as m:
        g = m.generate(MESSAGES)
    assert isinstance(g.stop_reason, harness.StopReason) and g.stop_reason == "eos"
    data = g.to_dict()  # after close: the names were read while the model was open
    assert data["text"] == g.text == "Hi there, how are you today?" and data["stop_reason"] == "eos"
    assert data["warnings"] == [] and data["tokens"][0]["top"]


def test_defaults_merge_into_each_call():
    with fake_model(max_tokens=3, logit_bias={"H": 1.0}) as m:
        assert m.defaults.max_tokens == 3
        assert len(m.generate(MESSAGES).tokens) == 3
        assert len(m.generate(MESSAGES, max_tokens=5).tokens) == 5
        merged = m.sampling(logit_bias={"i": -1.0}, stop="x")
        assert merged.logit_bias == {"H": 1.0, "i": -1.0} and merged.stop == ("x",)


def test_a_profile_gives_the_defaults(tmp_path):
    from harness.generation.profiles import load_profile

    path = tmp_path / "p.yaml"
    path.write_text("sampling:\n  temperature: 0.1\n  max_tokens: 4\neos: ban\n")
    profile = load_profile(str(path))
    merged = merged_sampling(profile.sampling, {"max_tokens": 9})
    assert (merged.temperature, merged.max_tokens, merged.eos) == (0.1, 9, "ban")


def test_the_public_names_are_the_result_record_event_and_error_types():
    for name in ("GenerationResult", "ScoreResult", "Stream", "StreamEvent", "StopReason", "TokenRecord",
                 "StepStats", "HarnessError", "TemplateError", "ContextOverflowError", "open", "render"):
        assert name in harness.__all__ and getattr(harness, name) is not None
    assert issubclass(harness.ModelError, harness.HarnessError)


# -- streams and the lifecycle -----------------------------------------------------------------
def test_a_stream_starts_lazily_and_a_with_block_broken_after_two_events_leaves_no_thread():
    before = stream_threads()
    with fake_model(decode_seconds=0.01) as m:
        with m.stream(MESSAGES) as s:
            assert not s.running and stream_threads() == before  # nothing runs until iterated
            for i, _ in enumerate(s):
                if i == 1:
                    break
        assert not s.running and stream_threads() == before
        assert s.result is not None and s.result.stop_reason == "interrupted"
        assert len(s.result.tokens) <= 3
        assert list(s) == []  # a finished stream iterates as empty (and does not hang)
    assert m.bench.engine.misuse == []


def test_a_whole_stream_matches_its_result_and_iterates_once():
    with fake_model() as m:
        s = m.stream(MESSAGES)
        events = list(s)
        assert "".join(e.text for e in events) == s.result.text == "Hi there, how are you today?"
        assert list(s) == [] and not s.running


def test_leaving_the_model_before_iterating_a_stream_is_an_error_not_a_crash():
    with fake_model() as m:
        s = m.stream(MESSAGES)
    with pytest.raises(harness.HarnessError, match="closed"):
        list(s)
    assert m.bench.engine.misuse == [] and m.bench.engine.closed


def test_close_during_iteration_stops_the_turn_then_frees_the_model():
    m = fake_model(decode_seconds=0.01, max_tokens=200)
    events = []
    with m.stream(MESSAGES, eos="ban") as s:
        for event in s:
            events.append(event)
            if len(events) == 2:
                m.close()
    assert s.result.stop_reason == "interrupted" and len(events) < 200
    assert m.bench.engine.closed and m.bench.engine.misuse == []


def test_close_from_another_thread_waits_for_the_running_turn():
    m = fake_model(decode_seconds=0.02, max_tokens=200)
    s = m.stream(MESSAGES, eos="ban")
    got = []

    def consume() -> None:
        got.extend(s)

    reader = threading.Thread(target=consume)
    reader.start()
    assert m.bench.engine.decoding.wait(10)
    m.close()  # stops the stream and waits for it
    reader.join(10)
    assert not reader.is_alive() and not s.running
    assert m.bench.engine.closed and m.bench.engine.misuse == []


def test_calls_after_close_are_harness_errors():
    m = fake_model()
    m.close()
    m.close()  # twice is fine
    for call in (lambda: m.generate(MESSAGES), lambda: m.score(MESSAGES), lambda: m.render(MESSAGES),
                 lambda: m.stream(MESSAGES)):
        with pytest.raises(harness.HarnessError, match="closed"):
            call()
    assert m.bench.engine.misuse == []


def test_close_inside_a_token_callback_ends_the_turn_then_closes():
    m = fake_model(max_tokens=100)
    g = m.generate(MESSAGES, eos="ban", on_token=lambda event: m.close())
    assert g.stop_reason == "interrupted" and len(g.tokens) == 1
    assert m.closed and m.bench.engine.closed and m.bench.engine.misuse == []


def test_two_threads_share_one_model_one_turn_at_a_time():
    m = fake_model(decode_seconds=0.002)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(m.generate(MESSAGES).text)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    m.close()
    assert results == ["Hi there, how are you today?"] * 3 and m.bench.engine.misuse == []
