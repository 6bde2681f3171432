"""Profiles: the shipped ones load; bad ones fail naming file, line and field."""

from __future__ import annotations

import pytest

from harness.errors import ProfileError
from harness.generation.profiles import list_profiles, load_profile, parse_profile


def test_shipped_profiles_load():
    assert {"smollm2", "gemma3-base"} <= set(list_profiles())
    smol = load_profile("smollm2")
    assert smol.model == "smollm2" and smol.template == "gguf" and smol.sampling.eos == "continue"
    gemma = load_profile("gemma3-base")
    assert gemma.model == "gemma3-270m" and gemma.template == "raw"
    assert gemma.sampling.stop == ("\nUser:",) and gemma.sampling.repeat_penalty == pytest.approx(1.1)


@pytest.mark.parametrize("text,line,field", [
    ("model: smollm2\ntemprature: 0.5\n", 2, "temprature"),
    ("model: smollm2\nsampling:\n  top_k: many\n", 3, "sampling.top_k"),
    ("sampling:\n  top_p: 0.9\n  bogus: 1\n", 3, "sampling.bogus"),
    ("eos: sometimes\n", 1, "eos"),
    ("sampling:\n  top_p: 7\n", 2, "sampling.top_p"),
    ("n_ctx: 10\n", 1, "n_ctx"),
    ("logit_bias:\n  '<|im_end|>': lots\n", 2, "logit_bias.<|im_end|>"),
])
def test_bad_profiles_name_file_line_and_field(text, line, field):
    with pytest.raises(ProfileError) as err:
        parse_profile(text, name="p", where="p.yaml")
    message = str(err.value)
    assert f"p.yaml:{line}:" in message and f"'{field}'" in message
    assert "\n" not in message


def test_malformed_yaml_names_the_line():
    with pytest.raises(ProfileError, match=r"p.yaml:3: not valid YAML"):
        parse_profile("model: a\nsampling:\n  top_k: [1, 2\n", name="p", where="p.yaml")


def test_profile_from_user_directory(harness_home):
    (harness_home / "profiles").mkdir(parents=True)
    (harness_home / "profiles" / "mine.yaml").write_text("template: chatml\neos: ban\n")
    profile = load_profile("mine")
    assert profile.template == "chatml" and profile.sampling.eos == "ban"
    with pytest.raises(ProfileError, match="no profile 'nope'"):
        load_profile("nope")


def test_sampling_params_hold_one_value_per_setting_in_its_order():
    """SamplingParams is the record of SETTINGS: the same names in the same order, each default a
    value its setting accepts (so a profile, a flag and the API agree on what a default is)."""
    from dataclasses import fields

    from harness.generation.settings import SETTINGS, SamplingParams, coerce

    assert [f.name for f in fields(SamplingParams)] == [s.name for s in SETTINGS]
    defaults = SamplingParams()
    for setting in SETTINGS:
        value = getattr(defaults, setting.name)
        shown = list(value) if isinstance(value, tuple) else dict(value) if setting.name == "logit_bias" else value
        assert value is None or isinstance(shown, setting.types), setting.name
        assert setting.valid(value), setting.name
        if value is not None:
            assert coerce(setting.name, shown) == value, setting.name
