"""Issue 26, finding 7: a server's numbers are validated before any statistic is computed from
them, its JSON is nested at most MAX_JSON_DEPTH deep, and the whole exchange — the status line
and headers too — is under the deadline. Hostile servers on loopback (tests/support)."""

from __future__ import annotations

import json
import math
import time

import pytest

from harness.backends.http import HttpClient
from harness.backends.openai_compat import OpenAICompatEngine
from harness.cli.main import main
from harness.errors import RemoteError
from harness.generation.remote_workbench import RemoteWorkbench
from harness.generation.settings import SamplingParams
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template
from tests.support.hostile_server import Hostile, Serve

HELLO = Conversation.of(("user", "hi"))
DEEP = b"[" * 100_000 + b"]" * 100_000


class DeepModels(Hostile):
    def models(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(DEEP)))
        self.end_headers()
        self.wfile.write(DEEP)


def test_a_deeply_nested_answer_is_one_remote_error():
    with Serve(DeepModels) as server, pytest.raises(RemoteError, match="nested more than"):
        HttpClient(server.url).get("/v1/models")


def test_a_deeply_nested_error_body_is_still_one_remote_error():
    class DeepError(Hostile):
        def models(self):
            body = b"[" * 1999
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with Serve(DeepError) as server, pytest.raises(RemoteError, match="HTTP 500"):
        HttpClient(server.url).get("/v1/models")


def _lying(logprob):
    class Lying(Hostile):
        def completion(self):
            self.wfile.write(b'data: {"choices": [{"text": "a", "logprobs": {"tokens": ["a"], '
                             b'"token_logprobs": [' + logprob + b'], "top_logprobs": [{"a": -0.1}]}}]}\n\n')
            self.wfile.flush()
    return Lying


@pytest.mark.parametrize("logprob", [b"Infinity", b"-Infinity", b"NaN", b"3.5", b"true", b'"-1"'])
def test_a_logprob_that_no_model_gives_is_one_line_naming_the_field(logprob, tmp_path, capsys):
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    with Serve(_lying(logprob)) as server:
        code = main(["generate", "--backend", f"openai+{server.url}", "--template", "chatml",
                     "--messages", str(messages), "--max-tokens", "2", "--json"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""  # no statistic, no -Infinity in JSON
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "token_logprobs" in err[0] and server.url in err[0]


def test_minus_infinity_is_refused_but_an_ordinary_logprob_is_a_statistic():
    with Serve(_lying(b"-0.5")) as server:
        bench = RemoteWorkbench(OpenAICompatEngine(server.url), load_template("chatml"))
        gen = bench.generate(bench.plan(HELLO), SamplingParams(max_tokens=1))
    assert gen.tokens[0].stats.surprisal_bits == pytest.approx(0.5 / 0.6931471805599453)


def _prompt_logprobs(row):
    class Scoring(Hostile):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if "prompt_logprobs" not in body:
                return self._json({"tokens": [1]})
            rows = [None] + [row] * (len(body["prompt"]) - 1)
            self._json({"choices": [{"text": "x", "prompt_logprobs": rows}]})
    return Scoring


@pytest.mark.parametrize("row,field", [
    ({"5": {"logprob": -1.0, "rank": "1"}}, "rank"),
    ({"5": {"logprob": -1.0, "rank": 0}}, "rank"),
    ({"5": {"logprob": -1.0, "rank": True}}, "rank"),
    ({"5": {"logprob": 2.0, "rank": 1}}, "logprob"),
    ({"-3": {"logprob": -1.0, "rank": 1}}, "key"),
    ({"99999999999": {"logprob": -1.0, "rank": 1}}, "key"),
])
def test_prompt_logprobs_of_the_wrong_kind_are_one_remote_error(row, field):
    with Serve(_prompt_logprobs(row)) as server:
        engine = OpenAICompatEngine(server.url)
        with pytest.raises(RemoteError) as err:
            engine.prompt_logprobs([1, 2, 3], 5)
    assert field in err.value.message and err.value.where.startswith(server.url)


class TrickledHeaders(Hostile):
    def models(self):  # one byte of the status line a quarter second, for a minute
        try:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 240:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            return  # harness hung up: the trickle never ran out
        self.ended.set()


@pytest.mark.slow
def test_a_server_trickling_its_headers_meets_the_deadline():
    with Serve(TrickledHeaders) as server:
        started = time.monotonic()
        with pytest.raises(RemoteError, match="longer than 2 s"):
            HttpClient(server.url, timeout=5.0, deadline=2.0).get("/v1/models")
        assert time.monotonic() - started < 10
        assert not server.handler.ended.is_set()  # given up while the server still trickled


@pytest.mark.parametrize("field,value", [("logprob", math.inf), ("logprob", 2.0), ("logprob", True),
                                         ("id", "7"), ("id", -1)])
def test_llama_server_values_are_checked_too(field, value):
    from harness.generation.open import open_server_workbench
    from tests.support.llama_server_stub import StubServer

    with StubServer("Hello there<|im_end|>") as stub:
        real_entry = stub.model.entry

        def lying(token, logprobs, n_probs):
            return real_entry(token, logprobs, n_probs) | {field: value}

        stub.model.entry = lying
        bench = open_server_workbench(stub.url, None)
        with pytest.raises(RemoteError) as err:
            bench.generate(bench.plan(HELLO), SamplingParams(temperature=0.0, max_tokens=3))
    assert f"completion_probabilities[].{field}" in err.value.message and err.value.where.startswith(stub.url)
