"""The native llama-server backend against the real llama-server, on every run of the test command.

``./dev test`` builds llama-server once per machine from the llama.cpp inside the pinned
llama-cpp-python sdist, with the same CPU flags as the installed library, and links it as
``.venv/bin/llama-server`` (``HARNESS_LLAMA_SERVER`` names another binary). Without one these tests
fail: the server path is proven here, not against stubs alone.

The server is started on loopback with the bundled SmolLM2 and the decode options the local engine
runs with (flash attention, ubatch, KV cache layout, weight repacking — read from the loaded local
context, see :func:`server_options`; the environment, ``GGML_CPU_TILED_MM`` included, is inherited),
so two builds of one llama.cpp are compared like with like. Cross-engine comparisons report where
the token streams first diverge and hold statistics to stated tolerances.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.generation.open import open_server_workbench
from harness.generation.settings import DEFAULT_N_PROBS, SamplingParams
from harness.prompt.conversation import Conversation

pytestmark = pytest.mark.model

HELLO = Conversation.of(("user", "Say hi."))
STORY = Conversation.of(("user", "Tell me a short story about a lighthouse keeper."))
# Two builds of the same llama.cpp with the same flags and decode options: probabilities agree to
# float32 rounding (the server's softmax sums the vocabulary in float32): 5e-4 is the tolerance.
PROB_TOLERANCE = 5e-4
# The server's top-k probabilities are float32 and their tail 1 - sum is rounded likewise; bounds
# must hold the local float64 full-vocabulary entropy to within this (bits).
BOUND_TOLERANCE = 1e-3
MAX_MEAN_WIDTH = 0.5  # bits, at the default n_probs
SLOTS = 4


def _binary() -> Path | None:
    named = os.environ.get("HARNESS_LLAMA_SERVER")
    path = Path(named) if named else Path(sys.prefix) / "bin" / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def server_options(backend) -> list[str]:
    """llama-server flags for the decode options the local backend's context runs with."""
    lib, ctx, model = backend._lib, backend._llm.context_params, backend._llm.model_params
    flash = {int(lib.LLAMA_FLASH_ATTN_TYPE_ENABLED): "on", int(lib.LLAMA_FLASH_ATTN_TYPE_DISABLED): "off"}
    options = ["--flash-attn", flash.get(int(ctx.flash_attn_type), "auto"),
               "--batch-size", str(ctx.n_batch), "--ubatch-size", str(ctx.n_ubatch),
               "--kv-unified" if ctx.kv_unified else "--no-kv-unified"]
    if not getattr(model, "use_extra_bufts", True):
        options.append("--no-repack")
    return options


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
    port = _port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    command = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "-c", str(1024 * SLOTS), "-t", "2", "--no-webui", "--parallel", str(SLOTS),
               *server_options(smollm2_backend)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
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


def divergence(local, served) -> str | None:
    """Where two generations' token streams first part, said with both tokens and probabilities."""
    for i, (a, b) in enumerate(zip(local.tokens, served.tokens, strict=False)):
        if a.id != b.id:
            def p(t):
                return 2.0 ** -t.stats.surprisal_bits if t.stats else math.nan
            return (f"token {i}: local {a.id} {a.piece!r} (p {p(a):.4f}), server {b.id} {b.piece!r} "
                    f"(p {p(b):.4f}) after {''.join(t.piece for t in local.tokens[:i])!r}")
    if len(local.tokens) != len(served.tokens):
        return f"lengths {len(local.tokens)} vs {len(served.tokens)}"
    return None


def probability_gap(local, served) -> float:
    """The largest difference between a local top-5 probability and the server's for that token."""
    worst = 0.0
    for here, there in zip(local.tokens, served.tokens, strict=True):
        listed = dict(zip(there.stats.top_ids, there.stats.top_probs, strict=True))
        for token, prob in zip(here.stats.top_ids, here.stats.top_probs, strict=True):
            if token in listed:
                worst = max(worst, abs(listed[token] - prob))
            else:
                assert prob < 1e-3, (here.piece, token, prob)  # only a near-tie far down may swap
        worst = max(worst, abs(2.0 ** -there.stats.surprisal_bits - 2.0 ** -here.stats.surprisal_bits))
    return worst


def test_real_llama_server_greedy_matches_local_loop(llama_server, smollm2):
    remote = open_server_workbench(llama_server, None)  # detected; template from /props
    assert remote.engine.kind == "llama-server" and remote.engine.slots == SLOTS
    assert remote.engine.info.eog_ids == smollm2.backend.info.eog_ids
    assert remote.engine.info.n_vocab == smollm2.backend.info.n_vocab
    greedy = SamplingParams(temperature=0.0, max_tokens=48, eos="stop")
    local = smollm2.generate(smollm2.plan(HELLO), greedy)
    served = remote.generate(remote.plan(HELLO), greedy)
    assert served.prompt == local.prompt
    where = divergence(local, served)
    assert where is None, f"the server's greedy tokens diverge from the local loop's at {where}"
    worst = probability_gap(local, served)
    print(f"\n{len(local.tokens)} tokens identical; max probability difference {worst:.2e} "
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
