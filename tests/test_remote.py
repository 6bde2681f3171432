"""Remote backends against real servers on loopback.

- OpenAI-compatible: llama-cpp-python's own server (``python -m llama_cpp.server``) on the
  bundled SmolLM2, started once per session. Greedy generation of the same conversation through
  harness's local token loop and through the server must give the same tokens, with the server's
  top-k probabilities equal to the local full-softmax ones within float tolerance.
- llama-server (native API): llama-server itself is not installed here, so these tests use a
  *stub* (tests/support/llama_server_stub.py) that speaks the documented formats and answers from the
  FakeBackend; the same comparison is made against the local loop on that fake model.
- Errors: a server that is down, answers HTTP 500, or answers something that is not JSON gives
  one line naming the URL.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.backends.fake import FakeBackend
from harness.backends.servers import open_engine, parse_backend
from harness.chat.dispatch import handle
from harness.cli.main import main
from harness.errors import CommandError, RemoteError
from harness.generation.open import open_server_workbench
from harness.generation.remote_workbench import RemoteWorkbench
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template
from tests.support.llama_server_stub import StubServer
from tests.support.server_parity import compare_to_server

SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
HELLO = Conversation.of(("user", "Say hi."))
GREEDY = SamplingParams(temperature=0.0, max_tokens=48, eos="stop")
PROB_TOLERANCE = 1e-4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openai_server_options(path) -> tuple[list[str], dict[str, str]]:
    """llama-cpp-python's server flags and environment for the local backend's decode path
    (harness.backends.llama_cpp): flash attention, the K/V cache types, batch = ubatch, and
    GGML_CPU_TILED_MM. Its single sequence makes the KV layout moot; it cannot turn weight
    repacking off, but llama.cpp repacks none of SmolLM2's Q4_1/Q8_0 tensors on x86 (its load
    log: "cannot be used with preferred buffer type CPU_REPACK")."""
    from harness.backends.llama_cpp import GGML_TYPES, TILED_MATMUL_ENV

    options = ["--flash_attn", str(path.flash_attn == "on"), "--type_k", str(GGML_TYPES[path.type_k]),
               "--type_v", str(GGML_TYPES[path.type_v]), "--n_batch", str(path.n_batch),
               "--n_ubatch", str(path.n_batch)]
    return options, {TILED_MATMUL_ENV: "1" if path.tiled_matmul else "0"}


@pytest.fixture(scope="session")
def openai_server(tmp_path_factory, smollm2_backend):
    """llama-cpp-python's server on SmolLM2 (n_ctx 1024, one thread) on the local decode path,
    shut down at the end."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"llama-cpp-python's server extras are not installed ({', '.join(missing)}): "
                    "pip install -e '.[dev]'")
    from harness.models.registry import resolve_model

    _, path = resolve_model("smollm2")
    options, env = openai_server_options(smollm2_backend.decode_path)
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"  # a file: llama.cpp's load chatter
    err = log.open("wb")                                    # would fill a pipe and block it
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "1024", "--n_threads", "1", "--n_threads_batch", "1", *options],
        stdout=subprocess.DEVNULL, stderr=err, env=os.environ | env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the server did not answer within 120 s")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


@pytest.mark.model
def test_openai_greedy_matches_local_loop(openai_server, smollm2):
    remote = RemoteWorkbench(open_engine(openai_server), smollm2.template)
    plan = smollm2.plan(HELLO)
    local = smollm2.generate(plan, GREEDY)
    served = remote.generate(remote.plan(HELLO), GREEDY)
    assert served.prompt == local.prompt
    assert local.stop_reason == "eos" and local.tokens[-1].id in remote.engine.info.eog_ids
    worst = compare_to_server(local, served, by_id=False)
    print(f"\n{len(local.tokens)} tokens identical; max top-k probability difference {worst:.2e}")
    assert worst < PROB_TOLERANCE


@pytest.mark.model
def test_openai_ban_never_ends(openai_server, smollm2):
    remote = RemoteWorkbench(open_engine(openai_server), smollm2.template)
    gen = remote.generate(remote.plan(HELLO), SamplingParams(temperature=0.0, max_tokens=30, eos="ban"))
    assert gen.stop_reason == "max_tokens" and len(gen.tokens) == 30
    assert not any(t.id in remote.engine.info.eog_ids for t in gen.tokens)


@pytest.mark.model
def test_generate_json_marks_truncation(openai_server, tmp_path, capsys):
    messages = tmp_path / "m.yaml"
    messages.write_text("- role: user\n  content: Say hi.\n")
    code = main(["generate", "--backend", f"openai+{openai_server}/v1", "--template", "chatml",
                 "--messages", str(messages), "--temperature", "0", "--max-tokens", "6", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"prompt", "text", "stop_reason", "tokens", "roles", "prompt_tokens", "timing"} <= out.keys()
    assert out["prompt_tokens"] == []  # the server does not score the prompt
    assert len(out["tokens"]) == 6 and out["roles"]["assistant"]["tokens"] == 6
    for token in out["tokens"]:
        assert token["truncated"] is True and 0.0 <= token["tail_mass"] <= 1.0
        assert len(token["top"]) == 10 and token["role"] == "assistant"
        lo, hi = token["entropy_bounds_bits"]
        assert hi is None and lo == token["entropy_bits"]  # no vocabulary size: [lumped, inf)
    assert out["roles"]["assistant"]["entropy_bounds_bits"][1] is None


def test_generate_json_carries_bounds_and_asks_for_n_probs(tmp_path, capsys):
    messages = tmp_path / "m.yaml"
    messages.write_text("- role: user\n  content: Say hi.\n")
    with StubServer(SCRIPT) as stub:
        code = main(["generate", "--backend", stub.url, "--messages", str(messages), "--temperature", "0",
                     "--max-tokens", "6", "--n-probs", "7", "--json"])
        asked = {r.get("n_probs") for r in stub.model.requests if "n_probs" in r}
    assert code == 0 and asked == {7}
    out = json.loads(capsys.readouterr().out)
    for token in out["tokens"]:
        lo, hi = token["entropy_bounds_bits"]
        assert lo <= token["entropy_bits"] <= hi and len(token["top"]) == 7
        eot_lo, eot_hi = token["eot_prob_bounds"]
        assert eot_lo == token["eot_prob"] <= eot_hi
    lo, hi = out["roles"]["assistant"]["entropy_bounds_bits"]
    assert lo <= out["roles"]["assistant"]["mean_entropy_bits"] <= hi


@pytest.mark.model
def test_run_experiment_on_the_server_stores_truncated_tokens(openai_server, tmp_path, capsys):
    exp = tmp_path / "tiny.yaml"
    exp.write_text("models: [smollm2]\ntemplates: [chatml]\nseeds: [1]\nmax_tokens: 4\n"
                   "sampling: {greedy: {temperature: 0}}\nconversations:\n"
                   "  - {name: hi, messages: [{role: user, content: Say hi.}]}\n"
                   "  - {name: sky, messages: [{role: user, content: Why is the sky blue}]}\n")
    db = tmp_path / "tiny.sqlite"
    assert main(["run", str(exp), "--db", str(db), "--backend", openai_server, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"]["backends"] == {openai_server: 2} and out["run"]["cells"] == {"done": 2}
    with sqlite3.connect(db) as conn:
        cells = conn.execute("SELECT model, backend, status FROM cells").fetchall()
        tokens = conn.execute("SELECT truncated, tail_mass, role FROM tokens WHERE scope = 'generated'").fetchall()
    assert cells == [("smollm2", openai_server, "done")] * 2
    assert 2 <= len(tokens) <= 8 and all(t == 1 and 0.0 <= tail <= 1.0 for t, tail, _ in tokens)
    assert {role for _, _, role in tokens} == {"assistant"}


@pytest.mark.model
def test_openai_template_must_be_named(openai_server):
    with pytest.raises(Exception, match="--template"):
        open_server_workbench(openai_server, None)


# -- llama-server (stub) ---------------------------------------------------------------------
SCRIPT = "Hi there, friend.<|im_end|>"


def _fake_bench(script: str) -> Workbench:
    backend = FakeBackend(script)
    return Workbench(backend, load_template("gguf", embedded=backend.info.chat_template, model_name="fake"))


@pytest.mark.parametrize("eos_in_final, eos_streamed", [(True, False), (False, False), (False, True)],
                         ids=["eos-probs-in-final", "eos-probe", "eos-streamed-as-a-token"])
def test_llama_server_greedy_matches_local_loop(eos_in_final, eos_streamed):
    local_bench = _fake_bench(SCRIPT)
    local = local_bench.generate(local_bench.plan(HELLO), GREEDY)
    with StubServer(SCRIPT, eos_probs_in_final=eos_in_final, eos_streamed=eos_streamed) as stub:
        remote = open_server_workbench(stub.url, None)  # detected; template from /props
        assert remote.engine.kind == "llama-server"
        assert remote.engine.info.eog_ids == local_bench.info.eog_ids
        served = remote.generate(remote.plan(HELLO), GREEDY)
    assert local.stop_reason == "eos"
    assert compare_to_server(local, served) < 1e-6


@pytest.mark.parametrize("eos_streamed", [False, True], ids=["eos-in-final", "eos-streamed-as-a-token"])
def test_llama_server_continue_resumes_with_token_ids(eos_streamed):
    script = "Hi.<|im_end|>\n<|im_start|>user\nMore please"
    params = SamplingParams(temperature=0.0, max_tokens=30, eos="continue")
    local_bench = _fake_bench(script)
    local = local_bench.generate(local_bench.plan(HELLO), params)
    with StubServer(script, eos_streamed=eos_streamed) as stub:
        remote = open_server_workbench(f"llama-server+{stub.url}", None)
        served = remote.generate(remote.plan(HELLO), params)
        resumed = stub.model.requests[1]["prompt"]
    assert isinstance(resumed[0], str) and resumed[-1] == 259  # the text, then ..., <|im_end|>
    compare_to_server(local, served)
    assert "user" in {t.role for t in served.tokens}


def test_llama_server_ban_sends_false_bias():
    with StubServer(SCRIPT) as stub:
        remote = open_server_workbench(stub.url, None)
        gen = remote.generate(remote.plan(HELLO), SamplingParams(temperature=0.0, max_tokens=25, eos="ban"))
        body = stub.model.requests[0]
    assert body["ignore_eos"] is True and sorted(i for i, v in body["logit_bias"] if v is False) == [257, 259]
    assert gen.stop_reason == "max_tokens" and not any(t.id in (257, 259) for t in gen.tokens)


def test_stop_string_ends_the_stream():
    with StubServer(SCRIPT) as stub:
        remote = open_server_workbench(stub.url, None)
        gen = remote.generate(remote.plan(HELLO), SamplingParams(temperature=0.0, stop=(",",)))
    assert gen.text == "Hi there" and gen.stop_reason == "stop_string"


# -- errors ----------------------------------------------------------------------------------
class _Broken(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/props"):
            self.send_error(404)
        elif "bad-json" in self.server.mode:  # type: ignore[attr-defined]
            self._send(200, b"<html>hello</html>")
        else:
            self._send(500, b'{"error": {"message": "model exploded\\nsecond line", "code": 500}}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(params=["http-500", "bad-json"])
def broken_server(request):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    httpd.mode = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield request.param, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_broken_server_gives_one_line(broken_server, tmp_path, capsys):
    mode, url = broken_server
    with pytest.raises(RemoteError) as caught:
        open_engine(url)
    message = str(caught.value)
    assert "\n" not in message and url in message
    assert ("HTTP 500" in message and "model exploded" in message) if mode == "http-500" else "not JSON" in message
    messages = tmp_path / "m.yaml"
    messages.write_text("- role: user\n  content: hi\n")
    assert main(["generate", "--backend", url, "--template", "chatml", "--messages", str(messages)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error: ") and "\n" not in err and url in err


def test_server_down_gives_one_line():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RemoteError, match="cannot reach the server") as caught:
        open_engine(url)
    assert url in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("spec,expected", [
    ("http://h:1", (None, "http://h:1")),
    ("openai+https://h/v1/", ("openai", "https://h")),
    ("llama-server+http://h:8080", ("llama-server", "http://h:8080")),
])
def test_parse_backend(spec, expected):
    assert parse_backend(spec) == expected


@pytest.mark.parametrize("spec", ["h:1", "vllm+http://h", "ftp://h"])
def test_parse_backend_refuses(spec):
    with pytest.raises(CommandError):
        parse_backend(spec)


def test_chat_session_over_llama_server_streams_reply_impersonate_prefill():
    from harness.chat.events import TokenStreamed, TurnFinished
    from harness.chat.session import Session

    with StubServer(SCRIPT) as stub:
        session = Session(open_server_workbench(stub.url, None),
                          params=SamplingParams(temperature=0.0, max_tokens=30))
        events: list = []
        handle(session, "hello", events.append)
        handle(session, "/impersonate", events.append)
        handle(session, "/prefill Hi", events.append)
        handle(session, "/raw", events.append)
    finished = [e for e in events if isinstance(e, TurnFinished)]
    assert [f.added for f in finished] == ["assistant", "user", "assistant"]
    assert "".join(e.text for e in events if isinstance(e, TokenStreamed)).startswith("Hi there, friend.")
    assert [m.role for m in session.conversation] == ["user", "assistant", "user", "assistant"]
    assert session.conversation.messages[1].content == "Hi there, friend."
    assert not [e for e in events if getattr(e, "level", "") == "error"]


def test_harness_chat_backend_on_a_terminal(tmp_path):
    from tests.support.ptychat import Chat

    with StubServer(SCRIPT) as stub:
        chat = Chat("--backend", stub.url, "--log", str(tmp_path / "log.jsonl"))
        try:
            chat.wait_for(b"user>", timeout=60)
            chat.type("/set temperature 0")
            chat.type("hello")
            chat.wait_for(b"[eos, 18 tokens", timeout=60)  # streamed character by character
            chat.type("/quit")
            assert chat.finish() == 0
        finally:
            if chat.proc.poll() is None:
                chat.proc.kill()
    assert b"remote (llama-server)" in chat.output
    record = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[-1])
    assert record["text"].startswith("Hi there, friend.") and record["tokens"][0]["truncated"] is True


def test_interrupt_closes_the_stream():
    seen: list = []
    with StubServer(SCRIPT) as stub:
        remote = open_server_workbench(stub.url, None)
        gen = remote.generate(remote.plan(HELLO), GREEDY, on_token=seen.append,
                              should_stop=lambda: len(seen) >= 3)
    assert gen.stop_reason == "interrupted" and len(gen.tokens) == 3 and gen.text == "Hi "
    assert [e.role for e in seen] == ["assistant"] * 3


def test_llama_server_candidates_decode_at_once_with_the_serial_statistics():
    """generate_many on a server with 4 slots: 4 requests in flight together, each candidate
    token for token and value for value what it is alone (the seed moves each one)."""
    script = "Hello there, my friend. How are you today?<|im_end|>"
    params = [SamplingParams(temperature=0.0, max_tokens=12, seed=s) for s in range(4)]
    with StubServer(script, slots=4, token_seconds=0.01) as stub:
        remote = open_server_workbench(stub.url, None)
        assert remote.engine.slots == 4
        plan = remote.plan(HELLO)
        serial = [remote.generate(plan, p) for p in params]
        assert stub.model.most_in_flight == 1
        together = remote.generate_many(plan, params)
        assert stub.model.most_in_flight == 4
    assert len(together) == 4
    for one, alone in zip(together, serial, strict=True):
        assert [t.id for t in one.tokens] == [t.id for t in alone.tokens]
        assert [t.stats for t in one.tokens] == [t.stats for t in alone.tokens]


def test_llama_server_candidates_stop_together():
    script = "Hello there, my friend. How are you today? " * 4
    with StubServer(script, slots=3, token_seconds=0.02) as stub:
        remote = open_server_workbench(stub.url, None)
        seen = []
        gens = remote.generate_many(remote.plan(HELLO), [SamplingParams(temperature=0.0, max_tokens=60)] * 3,
                                    on_token=[seen.append] * 3, should_stop=lambda: len(seen) >= 6)
    assert [g.stop_reason for g in gens] == ["interrupted"] * 3
    assert 6 <= sum(len(g.tokens) for g in gens) < 3 * 60


@pytest.mark.parametrize("mode", ["raw", "processed"])
def test_a_server_reporting_processed_logprobs_is_named_in_a_warning(mode):
    from tests.support.vllm_stub import VllmStub, serve

    server, url = serve(VllmStub(FakeBackend(SCRIPT), prompt_logprobs=False, logprobs_mode=mode))
    try:
        remote = RemoteWorkbench(open_engine(f"openai+{url}"), load_template("chatml"))
    finally:
        server.shutdown()
        server.server_close()
    assert remote.engine.slots > 1  # vLLM (owned_by) takes candidates at once
    if mode == "raw":
        assert remote.warnings == []
    else:
        assert len(remote.warnings) == 1 and url in remote.warnings[0] and "processed" in remote.warnings[0]
