"""The native llama-server backend against a real llama-server binary, when one is at hand.

llama-server is not part of llama-cpp-python; ``bench/build_llama_server.sh`` builds it from the
llama.cpp copy inside the pinned llama-cpp-python sdist (15-20 CPU minutes, too long for every CI
run). Point ``HARNESS_LLAMA_SERVER`` at the binary, or leave it in ``$HARNESS_CACHE/llama-server``,
and these tests start it on loopback with the bundled SmolLM2 and compare it with harness's local
token loop: the same greedy tokens, top-k probabilities within float tolerance, the template and
special tokens read from ``/props``, and past-EOS continuation. Without a binary they skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from harness.generation.open import open_server_workbench
from harness.generation.settings import SamplingParams
from harness.paths import cache_dir
from harness.prompt.conversation import Conversation
from tests.support.server_parity import compare_to_server

pytestmark = pytest.mark.model

HELLO = Conversation.of(("user", "Say hi."))
# a separate build of the same llama.cpp (its own compile flags, its own split of the work over
# threads) moves probabilities in the fifth decimal: 9.3e-5 at most, seen here
PROB_TOLERANCE = 5e-4


def _binary() -> Path | None:
    named = os.environ.get("HARNESS_LLAMA_SERVER")
    candidates = [Path(named)] if named else []
    candidates.append(cache_dir() / "llama-server" / "build" / "bin" / "llama-server")
    return next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    binary = _binary()
    if binary is None:
        pytest.skip("no llama-server binary: build one with bench/build_llama_server.sh "
                    "and set HARNESS_LLAMA_SERVER")
    from harness.models.registry import resolve_model

    _, model = resolve_model("smollm2")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("wb")
    proc = subprocess.Popen([str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                             "-c", "1024", "-t", "2", "--no-webui", "--parallel", "1",
                             # llama-server turns flash attention on by default, llama-cpp-python
                             # off: that alone moves SmolLM2's probabilities by up to 0.04 and flips
                             # greedy choices at near-ties; compare like with like
                             "--flash-attn", "off"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "llama-server exited at start"
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "llama-server did not answer within 120 s"
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_real_llama_server_greedy_matches_local_loop(llama_server, smollm2):
    remote = open_server_workbench(llama_server, None)  # detected; template from /props
    assert remote.engine.kind == "llama-server"
    assert remote.engine.info.eog_ids == smollm2.backend.info.eog_ids
    greedy = SamplingParams(temperature=0.0, max_tokens=48, eos="stop")
    local = smollm2.generate(smollm2.plan(HELLO), greedy)
    served = remote.generate(remote.plan(HELLO), greedy)
    assert served.prompt == local.prompt
    worst = compare_to_server(local, served)
    print(f"\n{len(local.tokens)} tokens identical; max top-k probability difference {worst:.2e}")
    assert worst < PROB_TOLERANCE


def test_real_llama_server_runs_past_end_of_turn(llama_server, smollm2):
    remote = open_server_workbench(f"llama-server+{llama_server}", "gguf")
    past = SamplingParams(temperature=0.0, max_tokens=40, eos="continue")
    local = smollm2.generate(smollm2.plan(HELLO), past)
    served = remote.generate(remote.plan(HELLO), past)
    assert [t.id for t in served.tokens] == [t.id for t in local.tokens]
    assert any(t.id in remote.engine.info.eog_ids for t in served.tokens[:-1])  # went on after it
    assert {t.role for t in served.tokens} == {t.role for t in local.tokens}


def test_diff_against_the_real_llama_server_apply_template(llama_server, tmp_path):
    """harness's rendering of SmolLM2's embedded template against llama-server's (minja)."""
    from harness.lab.against import server_render
    from harness.prompt.templates import load_template

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Grüße, 世界!"}]
    served = server_render(llama_server, messages)
    remote = open_server_workbench(llama_server, None)
    assert served == load_template("gguf", embedded=remote.engine.info.chat_template).render(
        messages, add_generation_prompt=True, variables=remote.variables)
