"""Another engine's rendering of the same messages, for ``harness diff --against URL``.

llama-server renders a chat with its own Jinja engine (minja) at ``POST /apply-template``: the body
is the OpenAI-style chat request (``messages``, ``tools``, ``chat_template_kwargs``), the answer
``{"prompt": ...}``, always with the generation prompt. Comparing it character by character with
harness's rendering shows where two engines disagree on one template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.backends.http import HttpClient
from harness.errors import RemoteError

_SCHEMES = ("llama-server+",)
_PASSED = ("bos_token", "eos_token", "tools", "strftime_now")


def server_url(url: str) -> str:
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return url[len(scheme):]
    return url


def server_render(url: str, messages: Sequence[Mapping[str, Any]],
                  variables: Mapping[str, Any] | None = None, *, timeout: float = 60.0) -> str:
    """The prompt the server at `url` renders for `messages` (generation prompt included)."""
    variables = dict(variables or {})
    body: dict[str, Any] = {"messages": [dict(m) for m in messages]}
    if variables.get("tools"):
        body["tools"] = variables["tools"]
    kwargs = {k: v for k, v in variables.items() if k not in _PASSED}
    if kwargs:
        body["chat_template_kwargs"] = kwargs
    base = server_url(url)
    reply = HttpClient(base, timeout=timeout).post("/apply-template", body)
    prompt = reply.get("prompt") if isinstance(reply, dict) else None
    if not isinstance(prompt, str):
        raise RemoteError("the server's /apply-template answer has no 'prompt' string",
                          where=base + "/apply-template", hint="is it llama-server (b4500 or later)?")
    return prompt
