"""The samplers people expect (issue 23): presence and frequency penalties, typical-p, XTC and
mirostat 2, each checked against llama.cpp's own sampler (through llama-cpp-python's bindings) on
the same logits — the tokens that survive and the distribution drawn from — and carried by the one
settings schema to /set, the saved session, the turn log and the servers' requests."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from harness.backends.llama_server import LlamaServerEngine
from harness.backends.openai_compat import OpenAICompatEngine
from harness.backends.remote import CompletionRequest
from harness.errors import CommandError
from harness.generation.sampling import Mirostat, adjustments, distribution, sample_with_entropy
from harness.generation.settings import EXTRA_SAMPLERS, SamplingParams
from tests.support.replkit import drive, fake_session, notices, saved

llama = pytest.importorskip("llama_cpp")

OPEN = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}  # every truncation off


def applied(sampler, logits: np.ndarray, accepted=()) -> tuple[list[tuple[int, float, float]], int]:
    """(id, logit, p) of the candidates llama.cpp's `sampler` leaves of `logits`, and its selected
    index (-1: none); `accepted` tokens are fed to it first. The sampler is freed."""
    n = len(logits)
    data = (llama.llama_token_data * n)(*[llama.llama_token_data(i, float(v), 0.0) for i, v in enumerate(logits)])
    array = llama.llama_token_data_array(data, n, -1, False)
    try:
        for token in accepted:
            llama.llama_sampler_accept(sampler, token)
        llama.llama_sampler_apply(sampler, ctypes.byref(array))
        return [(array.data[i].id, array.data[i].logit, array.data[i].p) for i in range(array.size)], array.selected
    finally:
        llama.llama_sampler_free(sampler)


def chain(*samplers):
    out = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())
    for sampler in samplers:
        llama.llama_sampler_chain_add(out, sampler)
    return out


def logits_of(seed: int, n: int = 300, scale: float = 3.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, scale, n)).astype(np.float32)


def ours(logits: np.ndarray, rng_seed: int = 0, **settings) -> tuple[np.ndarray, np.ndarray]:
    return distribution(logits, SamplingParams(**settings), np.random.default_rng(rng_seed), {})


@pytest.mark.parametrize("seed", range(4))
def test_penalties_match_llama_cpp(seed):
    logits = logits_of(seed, 64)
    recent = [3, 3, 5, 7, 7, 7, 9, 40, 40]
    params = SamplingParams(repeat_penalty=1.3, presence_penalty=0.4, frequency_penalty=0.25, repeat_last_n=64)
    kept, _ = applied(llama.llama_sampler_init_penalties(64, 64, 1.3, 0.25, 0.4), logits, recent)
    adjust = adjustments(logits, {}, [], recent, params)
    theirs = {token: logit for token, logit, _ in kept}
    assert set(adjust) == set(recent)
    assert all(theirs[t] == pytest.approx(adjust.get(t, float(logits[t])), rel=1e-6, abs=1e-6) for t in theirs)


@pytest.mark.parametrize("mass", [0.2, 0.5, 0.9, 0.95])
@pytest.mark.parametrize("seed", range(3))
def test_typical_p_keeps_the_tokens_llama_cpp_keeps(mass, seed):
    logits = logits_of(seed)
    kept, _ = applied(chain(llama.llama_sampler_init_typical(mass, 1)), logits)
    ids, _ = ours(logits, **OPEN, typical_p=mass)
    assert sorted(ids.tolist()) == sorted(t for t, _, _ in kept) and len(ids) < len(logits)


@pytest.mark.parametrize("seed", range(3))
def test_the_whole_chain_draws_from_the_distribution_llama_cpp_leaves(seed):
    """llama-cpp-python's order: top-k, typical, top-p, min-p, temperature; our probabilities are
    the softmax of what llama.cpp leaves, and the entropy reported is that distribution's."""
    logits = logits_of(seed, scale=2.0)
    kept, _ = applied(chain(llama.llama_sampler_init_top_k(40), llama.llama_sampler_init_typical(0.9, 1),
                            llama.llama_sampler_init_top_p(0.9, 1), llama.llama_sampler_init_min_p(0.02, 1),
                            llama.llama_sampler_init_temp(0.7)), logits)
    settings = {"temperature": 0.7, "top_k": 40, "typical_p": 0.9, "top_p": 0.9, "min_p": 0.02}
    ids, probs = ours(logits, **settings)
    theirs = dict((t, logit) for t, logit, _ in kept)
    assert ids.tolist() == sorted(theirs, key=lambda t: -theirs[t])
    values = np.array([theirs[t] for t in ids.tolist()], dtype=np.float64)
    expected = np.exp(values - values.max()) / np.exp(values - values.max()).sum()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    _, bits = sample_with_entropy(logits, SamplingParams(**settings), np.random.default_rng(1), {})
    assert bits == pytest.approx(float(-(expected * np.log2(expected)).sum()), rel=1e-6)


@pytest.mark.parametrize("threshold, scale", [(0.1, 1.0), (0.05, 1.5), (0.2, 0.8), (0.1, 0.1), (0.6, 1.0)])
def test_xtc_excludes_the_top_choices_as_llama_cpp_does(threshold, scale):
    logits = np.array([4.0, 3.8, 3.5, 3.0, 2.0, 1.0, 0.5, 0.0, -1.0, -2.0], dtype=np.float32) * scale
    kept, _ = applied(chain(llama.llama_sampler_init_xtc(1.0, threshold, 1, 7)), logits)
    ids, _ = ours(logits, **OPEN, xtc_probability=1.0, xtc_threshold=threshold)
    assert sorted(ids.tolist()) == sorted(t for t, _, _ in kept)


def test_xtc_cuts_only_on_its_chance_and_draws_only_when_on():
    logits = np.array([4.0, 3.8, 3.5, 1.0, 0.0], dtype=np.float32)
    cut = [len(ours(logits, rng_seed=s, **OPEN, xtc_probability=0.5, xtc_threshold=0.1)[0]) for s in range(200)]
    assert set(cut) == {3, 5} and 60 < cut.count(3) < 140  # about half the steps
    rng = np.random.default_rng(3)
    distribution(logits, SamplingParams(**OPEN), rng, {})
    assert rng.random() == np.random.default_rng(3).random()  # off: the seed's draws are untouched


def test_mirostat_2_truncates_and_learns_as_llama_cpp_does():
    tau, eta = 3.0, 0.5
    sampler = llama.llama_sampler_init_mirostat_v2(11, tau, eta)
    state = Mirostat(tau, eta)
    sizes = []
    try:
        for step in range(8):
            logits = logits_of(100 + step, 400, 2.5)
            n = len(logits)
            data = (llama.llama_token_data * n)(*[llama.llama_token_data(i, float(v), 0.0)
                                                  for i, v in enumerate(logits)])
            array = llama.llama_token_data_array(data, n, -1, False)
            llama.llama_sampler_apply(sampler, ctypes.byref(array))
            theirs = sorted(array.data[i].id for i in range(array.size))
            chosen = array.data[array.selected].id
            ids, probs = distribution(logits, SamplingParams(**OPEN, mirostat=2, mirostat_tau=tau, mirostat_eta=eta),
                                      np.random.default_rng(0), {}, mirostat=state)
            assert sorted(ids.tolist()) == theirs
            state.update(float(probs[ids.tolist().index(chosen)]))  # learn from the token llama.cpp drew
            sizes.append(len(theirs))
    finally:
        llama.llama_sampler_free(sampler)
    assert len(set(sizes)) > 2  # mu moved: the truncation changed from step to step


def test_mirostat_draws_report_the_truncated_distribution_entropy():
    logits = logits_of(5, 200)
    state = Mirostat(2.0, 0.1)
    ids, probs = distribution(logits, SamplingParams(mirostat=2, mirostat_tau=2.0), np.random.default_rng(0), {},
                              mirostat=Mirostat(2.0, 0.1))
    token, bits = sample_with_entropy(logits, SamplingParams(mirostat=2, mirostat_tau=2.0), np.random.default_rng(0),
                                      {}, mirostat=state)
    assert token in ids and bits == pytest.approx(float(-(probs * np.log2(probs)).sum()))
    assert state.mu != 4.0  # it learned from the draw


def test_the_samplers_are_settings_set_saved_and_logged(tmp_path):
    session = fake_session("Hi there, friend!<|im_end|>", tmp_path=tmp_path, temperature=1.0, seed=3)
    recorder = drive(session, "/set typical_p 0.5\r/set presence_penalty 0.3\r/set mirostat 1\r"
                              "/set xtc_probability 0.5\rHello\r")
    errors = notices(recorder, "error")
    assert len(errors) == 1 and "mirostat" in errors[0] and "0 (off) or 2" in errors[0]
    kept = saved(tmp_path)["settings"]
    assert (kept["typical_p"], kept["presence_penalty"], kept["xtc_probability"], kept["mirostat"]) == (0.5, 0.3, 0.5, 0)
    assert len(saved(tmp_path)["generations"]) == 1 and saved(tmp_path)["messages"][-1]["role"] == "assistant"
    drive(session, "/set mirostat 2\r/retry 2\r\r")  # decoded together, each with its own mu
    assert saved(tmp_path)["settings"]["mirostat"] == 2 and len(saved(tmp_path)["generations"]) == 3
    assert all(t[1] is not None for g in saved(tmp_path)["generations"][1:] for t in g["tokens"])


def test_settings_at_their_defaults_leave_the_settings_dict_as_it_was():
    assert "typical_p" not in SamplingParams().to_dict()  # the digests of earlier runs stand
    on = SamplingParams(frequency_penalty=0.2).to_dict()
    assert on["frequency_penalty"] == 0.2 and on["mirostat"] == 0 and on["typical_p"] == 1.0
    with pytest.raises(CommandError) as error:
        SamplingParams().with_values({"presence_penalty": float("nan")})
    assert error.value.field == "presence_penalty"


REQUEST = CompletionRequest("Hi", 5, 0.8, 40, 0.95, 0.05, 1.0, 64, 1, 5)


def test_llama_server_is_sent_every_sampler():
    from dataclasses import replace

    params = SamplingParams(typical_p=0.7, presence_penalty=0.2, frequency_penalty=0.1, xtc_probability=0.5,
                            xtc_threshold=0.2, mirostat=2, mirostat_tau=4.0, mirostat_eta=0.2)
    body = LlamaServerEngine.request_body(object.__new__(LlamaServerEngine), replace(
        REQUEST, samplers={name: getattr(params, name) for name in EXTRA_SAMPLERS}))
    assert {k: body[k] for k in ("typical_p", "presence_penalty", "frequency_penalty", "xtc_probability",
                                 "xtc_threshold", "mirostat", "mirostat_tau", "mirostat_eta")} == {
        "typical_p": 0.7, "presence_penalty": 0.2, "frequency_penalty": 0.1, "xtc_probability": 0.5,
        "xtc_threshold": 0.2, "mirostat": 2, "mirostat_tau": 4.0, "mirostat_eta": 0.2}


def test_an_openai_server_gets_the_penalties_and_refuses_what_it_cannot_honour():
    from dataclasses import replace

    engine = object.__new__(OpenAICompatEngine)
    engine.model = "m"
    body = engine.request_body(replace(REQUEST, samplers={"presence_penalty": 0.2, "frequency_penalty": 0.1}))
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.2, 0.1)
    with pytest.raises(CommandError) as error:
        engine.request_body(replace(REQUEST, samplers={"typical_p": 0.5}))
    assert error.value.field == "typical_p"
    with pytest.raises(CommandError) as error:
        engine.request_body(replace(REQUEST, samplers={"dry_multiplier": 0.8}))
    assert error.value.field == "dry_multiplier"


# -- DRY -----------------------------------------------------------------------------------------

def llama_dry_penalties(window, n_vocab, *, multiplier, base, allowed_length, last_n, vocab=None, breakers=()):
    """What llama.cpp's DRY sampler takes from each token's logit after accepting `window`."""
    words = (ctypes.c_char_p * max(len(breakers), 1))(*[b.encode() for b in breakers])
    sampler = llama.llama_sampler_init_dry(vocab, multiplier, base, allowed_length, last_n,
                                           words if breakers else None, len(breakers))
    kept, _ = applied(sampler, np.zeros(n_vocab, dtype=np.float32), window)
    return {token: -logit for token, logit, _ in kept if logit != 0}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("allowed_length, last_n", [(2, 64), (1, 64), (3, 20), (2, 12)])
def test_dry_penalises_the_tokens_llama_cpp_penalises(seed, allowed_length, last_n):
    from harness.generation.dry import dry_penalties

    rng = np.random.default_rng(seed)
    phrase = rng.integers(0, 12, 6).tolist()
    window = [*phrase, *rng.integers(0, 12, 5).tolist(), *phrase[:4], *rng.integers(0, 12, 3).tolist(), *phrase]
    settings = {"multiplier": 0.8, "base": 1.75, "allowed_length": allowed_length}
    theirs = llama_dry_penalties(window, 16, last_n=last_n, **settings)
    ours_ = dry_penalties(window[-last_n:], {}, **settings)
    assert theirs.keys() == ours_.keys()
    assert all(theirs[t] == pytest.approx(ours_[t], rel=1e-5) for t in theirs)
    if last_n == 64 and allowed_length <= 2:
        assert theirs  # the repeated phrase is penalised at all


@pytest.mark.model
def test_dry_sequence_breakers_cut_repetitions_as_llama_cpp_does(smollm2_backend):
    from harness.generation.dry import breaker_table, dry_penalties

    backend = smollm2_backend
    params = llama.llama_model_default_params()
    params.vocab_only = True
    model = llama.llama_model_load_from_file(str(backend.info.path).encode(), params)
    try:
        vocab = llama.llama_model_get_vocab(model)
        table = breaker_table(backend.info.n_vocab, backend.piece, lambda t: backend.tokenize(t, special=False))
        assert table[backend.tokenize("\n", special=False)[0]] == ((),)  # a whole breaker
        for text in ("The cat sat on the mat. The cat sat on the mat. The cat sat",
                     "name: Bob\nname: Bob\nname:", 'He said "yes" and she said "yes" and he said "',
                     "a *b* c d a *b* c d a *b"):
            window = backend.tokenize(text, special=False)
            settings = {"multiplier": 0.8, "base": 1.75, "allowed_length": 2}
            theirs = llama_dry_penalties(window, backend.info.n_vocab, last_n=64, vocab=vocab,
                                         breakers=("\n", ":", '"', "*"), **settings)
            ours_ = dry_penalties(window, table, **settings)
            assert theirs.keys() == ours_.keys(), text
            assert all(theirs[t] == pytest.approx(ours_[t], rel=1e-5) for t in theirs)
    finally:
        llama.llama_model_free(model)


def test_dry_is_a_setting_the_loop_applies(tmp_path):
    """Greedy on a scripted repetition: DRY turns the model away once it would repeat."""
    script = "Hi there, hi there, hi there, hi there!<|im_end|>"
    plain = fake_session(script, temperature=0, max_tokens=30)
    drive(plain, "Hello\r")
    session = fake_session(script, tmp_path=tmp_path, temperature=0, max_tokens=30)
    drive(session, "/set dry_multiplier 100\rHello\r")
    assert saved(tmp_path)["settings"]["dry_multiplier"] == 100
    assert plain.transcript[0].text == script[:30]
    dried = saved(tmp_path)["generations"][0]["text"]
    assert dried.startswith("Hi there, ") and not script.startswith(dried)


def test_a_profile_takes_the_samplers_and_names_a_bad_one():
    from harness.errors import HarnessError
    from harness.generation.profiles import parse_profile

    profile = parse_profile("model: smollm2\nsampling:\n  mirostat: 2\n  dry_multiplier: 0.8\n  typical_p: 0.9\n",
                            name="p", where="p.yaml")
    assert (profile.sampling.mirostat, profile.sampling.dry_multiplier, profile.sampling.typical_p) == (2, 0.8, 0.9)
    with pytest.raises(HarnessError) as error:
        parse_profile("model: smollm2\nsampling:\n  mirostat: 1\n", name="p", where="p.yaml")
    assert "mirostat" in str(error.value) and "0 (off) or 2" in str(error.value)
