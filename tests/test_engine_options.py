"""llama.cpp load options (GPU layers, flash attention, KV cache types, mmap, batch size):
declared once, checked, and passed to llama.cpp (proved on CPU by what the context reports)."""

from __future__ import annotations

import pytest

from harness.backends.base import EngineOptions
from harness.cli.commands import engine_options
from harness.cli.main import build_parser
from harness.errors import CommandError, ExperimentError, ProfileError
from harness.experiment.spec import parse_experiment
from harness.generation.profiles import parse_profile

EXP = """\
models: [{name: smollm2, engine: {type_k: q8_0}}, {name: gemma3-270m}]
engine: {n_gpu_layers: -1, n_batch: 256}
conversations: [{name: a, messages: [{role: user, content: Hi}]}]
"""


@pytest.mark.parametrize("data, message", [
    ({"flash_attn": "maybe"}, "flash_attn"),
    ({"type_k": "q3_weird"}, "type_k"),
    ({"type_v": "q8_0", "flash_attn": "off"}, "type_v: a quantised V cache needs flash attention"),
    ({"n_batch": 0}, "n_batch"),
    ({"use_mmap": "no"}, "use_mmap"),
    ({"gpu": 1}, "gpu: unknown field"),
])
def test_bad_options_name_their_field(data, message):
    with pytest.raises(ValueError, match=message):
        EngineOptions.from_mapping(data)


def test_merged_keeps_what_the_override_leaves_unset():
    base = EngineOptions(n_gpu_layers=10, type_k="q8_0")
    assert base.merged(EngineOptions(type_k="f16", n_batch=64)).to_dict() == \
        {"n_gpu_layers": 10, "type_k": "f16", "n_batch": 64}


def test_experiment_engine_at_the_top_and_per_model(tmp_path):
    exp = parse_experiment(EXP, where="e.yaml", base=tmp_path)
    smol, gemma = exp.models
    assert smol.engine.to_dict() == {"n_gpu_layers": -1, "n_batch": 256, "type_k": "q8_0"}
    assert gemma.engine.to_dict() == {"n_gpu_layers": -1, "n_batch": 256}
    plain = parse_experiment(EXP.replace("engine: {type_k: q8_0}", "").replace(
        "engine: {n_gpu_layers: -1, n_batch: 256}\n", ""), where="e.yaml", base=tmp_path)
    assert plain.canonical()["models"][0] == ["smollm2", "smollm2", ["gguf"], 2048]  # digest as before
    with pytest.raises(ExperimentError, match=r"models\[0\].engine.type_k"):
        parse_experiment(EXP.replace("q8_0", "q9"), where="e.yaml", base=tmp_path)


def test_profile_engine_key(tmp_path):
    prof = parse_profile("model: smollm2\nengine: {flash_attn: on, type_v: q8_0}\n", name="p", where="p.yaml")
    assert prof.engine.to_dict() == {"flash_attn": "on", "type_v": "q8_0"}
    with pytest.raises(ProfileError, match="engine.type_v"):
        parse_profile("engine: {type_v: q8_0, flash_attn: off}\n", name="p", where="p.yaml")


def test_cli_flags():
    args = build_parser().parse_args(["generate", "--messages", "m.yaml", "--n-gpu-layers", "-1",
                                      "--flash-attn", "on", "--type-k", "q8_0", "--type-v", "q8_0",
                                      "--no-mmap", "--n-batch", "128"])
    assert engine_options(args).to_dict() == {"n_gpu_layers": -1, "flash_attn": "on", "type_k": "q8_0",
                                              "type_v": "q8_0", "use_mmap": False, "n_batch": 128}
    assert engine_options(build_parser().parse_args(["generate", "--messages", "m.yaml"])) is None
    with pytest.raises(CommandError, match="type-v"):
        engine_options(build_parser().parse_args(["generate", "--messages", "m", "--type-v", "q4_0",
                                                  "--flash-attn", "off"]))


@pytest.mark.model
def test_llama_cpp_context_reports_the_options():
    from harness.models.registry import open_backend

    engine = EngineOptions(flash_attn="on", type_k="q8_0", type_v="q8_0", use_mmap=False, n_batch=128,
                           n_gpu_layers=0)
    backend = open_backend("smollm2", n_ctx=512, n_threads=2, engine=engine)
    try:
        report = backend.context_report()
        assert report["n_batch"] == 128 and report["n_ctx"] == 512 and report["n_gpu_layers"] == 0
        assert report["flash_attn"] == "enabled" and (report["type_k"], report["type_v"]) == ("q8_0", "q8_0")
        assert report["use_mmap"] is False
        backend.decode(backend.tokenize("Hello there"), all_logits=False)  # it runs
        plain = open_backend("smollm2", n_ctx=512, n_threads=2).context_report()
        # the default is the batch-invariant path: flash attention, K f16, V bf16, no repacking
        assert (plain["flash_attn"], plain["type_k"], plain["type_v"], plain["use_mmap"], plain["repack"]) == \
            ("enabled", "f16", "bf16", True, False)
    finally:
        backend.close()
