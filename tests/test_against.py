"""``harness diff T --against URL``: harness's rendering against a server's ``/apply-template``,
on the loopback llama-server stub (its renderer is plain jinja2; the real llama-server, when
built, is compared in ``test_llama_server_real``)."""

from __future__ import annotations

import json

import pytest

from harness.errors import RemoteError
from harness.lab.against import server_render
from tests.support.cli import harness, write_messages
from tests.support.llama_server_stub import StubServer

MESSAGES = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Grüße"}]


def test_server_render_posts_the_chat_and_reads_the_prompt():
    with StubServer("x") as server:
        prompt = server_render(f"llama-server+{server.url}", MESSAGES, {"bos_token": "<s>", "enable_thinking": False})
        assert prompt.endswith("<|im_start|>user\nGrüße<|im_end|>\n<|im_start|>assistant\n")
        assert server.model.requests[-1] == {"messages": MESSAGES, "chat_template_kwargs": {"enable_thinking": False}}


def test_diff_against_agrees_and_then_shows_a_disagreement(tmp_path):
    messages = write_messages(tmp_path / "m.json", MESSAGES)
    with StubServer("x") as server:
        same = json.loads(harness("diff", "chatml", "--messages", str(messages), "--against", server.url,
                                  "--json").stdout)
        assert same["equal"] and same["chars"] == []
        server.model.apply_template_edit = lambda text: text.replace("Grüße", "Gruesse")
        other = json.loads(harness("diff", "chatml", "--messages", str(messages), "--against", server.url,
                                   "--json").stdout)
    assert not other["equal"]
    assert [(c["op"], c["a_text"], c["b_text"]) for c in other["chars"]] == [("replace", "üß", "uess")]


def test_a_server_without_apply_template_is_one_error():
    with StubServer("x") as server, pytest.raises(RemoteError):
        server_render(server.url + "/nope", MESSAGES)
