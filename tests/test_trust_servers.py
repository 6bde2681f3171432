"""Issue 13, class 5: remote backends are bounded. Each test runs a hostile server on loopback
(stdlib http.server) and checks harness stays within its limits and says what happened in one line.

Limits in time are checked by events, not by a wall clock: harness must give up while the hostile
server is still at it (its `ended` event not yet set), however slow the machine is.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from harness.backends import openai_compat
from harness.backends.http import HttpClient
from harness.backends.openai_compat import OpenAICompatEngine
from harness.cli.main import main
from harness.errors import RemoteError
from harness.generation.remote_workbench import RemoteWorkbench
from harness.generation.settings import SamplingParams
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template
from tests.support.hostile_server import Hostile, Serve

pytestmark = pytest.mark.slow

HELLO = Conversation.of(("user", "hi"))


def _bench(url: str, **client) -> RemoteWorkbench:
    engine = OpenAICompatEngine(url, client=HttpClient(url, **client))
    return RemoteWorkbench(engine, load_template("chatml"))


class Forever(Hostile):
    def completion(self):
        while True:
            self.event(self.token("a"))


def test_max_tokens_is_enforced_locally(tmp_path, capsys):
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    with Serve(Forever) as server:
        code = main(["generate", "--backend", f"openai+{server.url}", "--template", "chatml",
                     "--messages", str(messages), "--max-tokens", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["tokens"]) == 3 and out["stop_reason"] == "max_tokens"


class HugeModels(Hostile):
    def models(self):  # 40 MB, no Content-Length, never valid JSON
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"x" * 2**20
        for _ in range(40):
            self.wfile.write(chunk)


def test_a_huge_body_is_refused():
    with Serve(HugeModels) as server, pytest.raises(RemoteError, match="longer than 32 MB"):
        OpenAICompatEngine(server.url)


class HugeLine(Hostile):
    def completion(self):
        self.wfile.write(b"data: " + b"x" * (9 * 2**20))
        self.wfile.flush()
        time.sleep(5)


def test_an_endless_event_line_is_refused():
    with Serve(HugeLine) as server:
        bench = _bench(server.url)
        with pytest.raises(RemoteError, match="event line is longer than 8 MB"):
            bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=5))
        assert not server.handler.ended.is_set()  # refused mid-line, not when the server gave up


class PingOnly(Hostile):
    def completion(self):
        for _ in range(200):
            self.wfile.write(b": ping\n\n")
            self.wfile.flush()
            time.sleep(0.1)


def test_pings_alone_hit_the_idle_timeout():
    with Serve(PingOnly) as server:
        bench = _bench(server.url, timeout=1.0)
        with pytest.raises(RemoteError, match="no data for 1 s"):
            bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=5))
        assert not server.handler.ended.is_set()  # the pings had not run out: they kept nothing alive


class Dribble(Hostile):
    def completion(self):  # a token now and then, forever: never idle, never done
        for _ in range(1000):
            self.event({"choices": [{"text": "", "logprobs": None}]})
            time.sleep(0.2)


def test_a_request_has_an_overall_deadline():
    with Serve(Dribble) as server:
        bench = _bench(server.url, timeout=5.0, deadline=1.5)
        with pytest.raises(RemoteError, match="longer than 1.5 s"):
            bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=5))
        assert not server.handler.ended.is_set()  # the deadline, not the end of the dribble


class Stalled(Hostile):
    def completion(self):
        self.event(self.token("a"))
        time.sleep(30)


def test_ctrl_c_stops_a_stalled_stream_within_a_second():
    with Serve(Stalled) as server:
        bench = _bench(server.url)
        pressed = threading.Event()
        threading.Timer(0.5, pressed.set).start()
        gen = bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=50), should_stop=pressed.is_set)
        assert pressed.is_set() and not server.handler.ended.is_set()  # stopped while the server stalls
    assert gen.stop_reason == "interrupted" and gen.text == "a"


class NewTexts(Hostile):
    def completion(self):  # every token and alternative a text never seen before
        for i in range(300):
            top = {f"t{i}-{k}": -1.0 - k for k in range(10)}
            self.event(self.token(f"w{i}", top))


def test_token_texts_cost_a_bounded_number_of_requests(monkeypatch):
    monkeypatch.setattr(openai_compat, "MAX_RESOLVE", 50)
    with Serve(NewTexts) as server:
        bench = _bench(server.url)
        gen = bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=300, eos="ban"))
        asked = sum(1 for path, _ in server.handler.seen if path == "/tokenize")
    assert len(gen.tokens) == 300
    assert asked <= 50 + 5  # the cap plus the engine's own probes (BOS prefix, markers)


class NullToken(Hostile):
    def completion(self):
        self.event({"choices": [{"logprobs": {"tokens": ["a", None], "token_logprobs": [-1, -1],
                                              "top_logprobs": [{"a": -1}, {"b": -1}]}}]})


class TopAsList(Hostile):
    def completion(self):
        self.event({"choices": [{"logprobs": {"tokens": ["a"], "token_logprobs": [-1],
                                              "top_logprobs": [["a", -1]]}}]})


@pytest.mark.parametrize("handler", [NullToken, TopAsList])
def test_malformed_chunks_are_one_line_errors(handler, tmp_path, capsys):
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    with Serve(handler) as server:
        code = main(["generate", "--backend", f"openai+{server.url}", "--template", "chatml",
                     "--messages", str(messages)])
    err = capsys.readouterr().err
    assert code == 1 and "malformed" in err and len(err.strip().splitlines()) == 1


class Thief(Hostile):
    def do_GET(self):
        self.seen.append((self.path, dict(self.headers)))
        self._json({"data": [{"id": "thief"}], "chat_template": "x"})


def test_the_api_key_never_follows_a_redirect_to_another_origin():
    with Serve(Thief) as thief:
        class Redirect(Hostile):
            def do_GET(self):
                self.send_response(302)
                self.send_header("Location", thief.url + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

        with Serve(Redirect) as server:
            client = HttpClient(server.url, api_key="sekrit")
            assert client.get("/props")["data"][0]["id"] == "thief"
        headers = {k.lower(): v for k, v in thief.handler.seen[0][1].items()}
    assert "authorization" not in headers


def test_the_api_key_does_follow_a_redirect_within_the_origin():
    class Both(Thief):
        def do_GET(self):
            if self.path == "/props":
                self.send_response(302)
                self.send_header("Location", "/v1/models")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    with Serve(Both) as server:
        HttpClient(server.url, api_key="sekrit").get("/props")
        headers = {k.lower(): v for k, v in server.handler.seen[-1][1].items()}
    assert headers.get("authorization") == "Bearer sekrit"


class TooManyLogprobs(Hostile):
    """vLLM's answer to more top logprobs than its --max-logprobs."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/tokenize":
            return self._json({"tokens": [ord(c) for c in body.get("prompt", "")[:1]]})
        if body.get("logprobs", 0) > 20:
            return self._json({"error": {"message": "Requested sample logprobs of 200, which is greater "
                                                    "than max allowed: 20"}}, 400)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.event(self.token("Hi"))
        self.event({"choices": [{"text": "", "finish_reason": "length"}]})
        self.close_connection = True


def test_vllm_refusing_many_logprobs_says_what_to_do():
    with Serve(TooManyLogprobs) as server:
        bench = _bench(server.url)
        with pytest.raises(RemoteError) as caught:
            bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=2))
        assert caught.value.status == 400 and "--max-logprobs 200" in caught.value.hint
        gen = bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=2, n_probs=20))
    assert gen.text == "Hi"
