"""The native llama-server backend against the real llama-server, on every run of the test command.

``./dev test`` builds llama-server once per machine from the llama.cpp inside the pinned
llama-cpp-python sdist, with the same CPU flags as the installed library, and links it as
``.venv/bin/llama-server`` (``HARNESS_LLAMA_SERVER`` names another binary). Without one these tests
fail: the server path is proven here, not against stubs alone.

The server is started on loopback with the bundled SmolLM2 and the decode path the local engine
runs (flash attention, K/V cache types, a KV stream per sequence, no repacking, ubatch,
``GGML_CPU_TILED_MM`` — read from the local backend's ``decode_path``, see :func:`server_options`),
so two builds of one llama.cpp are compared like with like. Cross-engine comparisons report where
the token streams first diverge and hold statistics to stated tolerances.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.backends.base import DecodePath
from harness.backends.llama_cpp import TILED_MATMUL_ENV
from harness.generation.open import open_server_workbench
from harness.generation.settings import DEFAULT_N_PROBS, SamplingParams
from harness.prompt.conversation import Conversation
from tests.support.server_parity import BOUND_TOLERANCE, compare_to_server, divergence

pytestmark = pytest.mark.model

HELLO = Conversation.of(("user", "Say hi."))
STORY = Conversation.of(("user", "Tell me a short story about a lighthouse keeper."))
# Two builds of the same llama.cpp with the same flags and decode options: probabilities agree to
# float32 rounding (the server's softmax sums the vocabulary in float32): 5e-4 is the tolerance.
PROB_TOLERANCE = 5e-4
MAX_MEAN_WIDTH = 0.5  # bits, at the default n_probs
SLOTS = 4


def _binary() -> Path | None:
    named = os.environ.get("HARNESS_LLAMA_SERVER")
    path = Path(named) if named else Path(sys.prefix) / "bin" / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def server_options(path: DecodePath) -> tuple[list[str], dict[str, str]]:
    """llama-server flags and environment for the decode path the local backend runs
    (harness.backends.llama_cpp: flash attention, K/V cache types, a KV stream per sequence, no
    repacking, GGML_CPU_TILED_MM, ubatch = batch), so two builds of one llama.cpp compute alike."""
    options = ["--flash-attn", path.flash_attn, "--cache-type-k", path.type_k, "--cache-type-v", path.type_v,
               "--batch-size", str(path.n_batch), "--ubatch-size", str(path.n_batch),
               "--kv-unified" if path.kv_unified else "--no-kv-unified",
               "--repack" if path.repack else "--no-repack"]
    return options, {TILED_MATMUL_ENV: "1" if path.tiled_matmul else "0"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(smollm2_backend, tmp_path_factory):
    binary = _binary()
    if binary is None:
        pytest.fail("no llama-server: `./dev test` builds it (once per machine), or set HARNESS_LLAMA_SERVER")
    from harness.models.registry import resolve_model

    _, model = resolve_model("smollm2")
    options, env = server_options(smollm2_backend.decode_path)
    port = _port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "-c", str(1024 * SLOTS), "-t", "2", "--no-webui", "--parallel", str(SLOTS),
               *options]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ | env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-server exited at start: {log_path.read_text(errors='replace')[-1500:]}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "llama-server did not answer within 120 s"
                time.sleep(0.3)
        print(f"\nllama-server {' '.join(command[1:])}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_real_llama_server_greedy_matches_local_loop(llama_server, smollm2):
    remote = open_server_workbench(llama_server, None)  # detected; template from /props
    assert remote.engine.kind == "llama-server" and remote.engine.slots == SLOTS
    assert remote.engine.info.eog_ids == smollm2.backend.info.eog_ids
    assert remote.engine.info.n_vocab == smollm2.backend.info.n_vocab
    greedy = SamplingParams(temperature=0.0, max_tokens=48, eos="stop")
    local = smollm2.generate(smollm2.plan(HELLO), greedy)
    served = remote.generate(remote.plan(HELLO), greedy)
    assert served.prompt == local.prompt
    worst = compare_to_server(local, served)
    print(f"\n{len(local.tokens)} tokens identical; max top-k probability difference {worst:.2e} "
          f"(tolerance {PROB_TOLERANCE})")
    assert worst < PROB_TOLERANCE


def test_real_llama_server_bounds_hold_the_local_entropy(llama_server, smollm2):
    """Greedy on SmolLM2 at the default n_probs: every token's [lo, hi] holds the local
    full-vocabulary entropy, the point estimate lies inside, and the mean width is at most 0.5 bits."""
    remote = open_server_workbench(llama_server, None)
    greedy = SamplingParams(temperature=0.0, max_tokens=96, eos="stop")
    assert greedy.n_probs == DEFAULT_N_PROBS
    widths, errors, lumped = [], [], []
    for conversation in (HELLO, STORY):
        local = smollm2.generate(smollm2.plan(conversation), greedy)
        served = remote.generate(remote.plan(conversation), greedy)
        where = divergence(local, served)
        assert where is None, f"diverged at {where}"
        for i, (here, there) in enumerate(zip(local.tokens, served.tokens, strict=True)):
            lo, hi = there.stats.entropy_bounds_bits
            truth = here.stats.entropy_bits
            assert lo - BOUND_TOLERANCE <= truth <= hi + BOUND_TOLERANCE, (
                f"token {i} {here.piece!r}: local entropy {truth:.4f} outside [{lo:.4f}, {hi:.4f}]")
            assert lo <= there.stats.entropy_bits <= hi
            widths.append(hi - lo)
            errors.append(abs(there.stats.entropy_bits - truth))
            lumped.append(truth - lo)
    mean_width = sum(widths) / len(widths)
    print(f"\n{len(widths)} tokens, n_probs {DEFAULT_N_PROBS}: every bound holds the local entropy; "
          f"mean width {mean_width:.3f} bits (max {max(widths):.3f}); mean |estimate - truth| "
          f"{sum(errors) / len(errors):.4f} bits")
    assert mean_width <= MAX_MEAN_WIDTH


def test_real_llama_server_runs_past_end_of_turn(llama_server, smollm2):
    remote = open_server_workbench(f"llama-server+{llama_server}", "gguf")
    past = SamplingParams(temperature=0.0, max_tokens=40, eos="continue")
    local = smollm2.generate(smollm2.plan(HELLO), past)
    served = remote.generate(remote.plan(HELLO), past)
    where = divergence(local, served)
    assert where is None, f"diverged at {where}"
    assert any(t.id in remote.engine.info.eog_ids for t in served.tokens[:-1])  # went on after it
    assert [t.role for t in served.tokens] == [t.role for t in local.tokens]


def test_real_llama_server_candidates_together_match_serial(llama_server):
    """/retry 4 on a server with 4 slots: the 4 seeded candidates decode together (one batch of
    the server's) with the tokens and statistics each has alone."""
    remote = open_server_workbench(llama_server, None)
    params = [SamplingParams(temperature=0.8, max_tokens=32, seed=seed, eos="ban") for seed in range(4)]
    plan = remote.plan(STORY)
    serial = [remote.generate(plan, p) for p in params]
    together = remote.generate_many(plan, params)
    for k, (one, alone) in enumerate(zip(together, serial, strict=True)):
        where = divergence(alone, one)
        assert where is None, f"candidate {k} diverged from its serial run at {where}"
        gap = max(abs(a.stats.entropy_bits - b.stats.entropy_bits) + abs(a.stats.surprisal_bits - b.stats.surprisal_bits)
                  for a, b in zip(alone.tokens, one.tokens, strict=True))
        assert gap < 1e-3, f"candidate {k}: statistics differ by {gap:.2e} bits from its serial run"


def test_diff_against_the_real_llama_server_apply_template(llama_server):
    """harness's rendering of SmolLM2's embedded template against llama-server's (minja)."""
    from harness.lab.against import server_render
    from harness.prompt.templates import load_template

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Grüße, 世界!"}]
    served = server_render(llama_server, messages)
    remote = open_server_workbench(llama_server, None)
    assert served == load_template("gguf", embedded=remote.engine.info.chat_template).render(
        messages, add_generation_prompt=True, variables=remote.variables)
