"""What harness needs from an inference server: a different engine from the local Backend.

A local backend hands out logits and harness samples; a server samples itself and reports,
per generated token, its id (when the API gives ids), its bytes, its probability and the top-k
alternatives. :class:`RemoteEngine` is that contract; the HTTP clients in ``harness.backends``
(``llama_server``, ``openai_compat``) implement it. Prompts are always raw text (or token ids),
never chat messages: templates render here, in harness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from harness.backends.base import ModelInfo


@dataclass(frozen=True)
class TopEntry:
    """One alternative of a top-k list. `id` < 0: the server named the token by text only and
    that text is not exactly one token (see :meth:`RemoteEngine.piece`)."""

    id: int
    text: str
    prob: float


@dataclass(frozen=True)
class RemoteStep:
    """One token the server generated."""

    id: int
    raw: bytes
    prob: float | None  # probability of this token under the model (temperature 1), if reported
    top: tuple[TopEntry, ...]


@dataclass(frozen=True)
class RemoteFinish:
    """The end of one server completion. `reason`: eos (an end-of-generation token was sampled;
    the server does not report it as a token), length, or stop (a server-side stop word)."""

    reason: str
    eos_step: RemoteStep | None = None  # the end-of-generation token, when the server reports it


@dataclass(frozen=True)
class CompletionRequest:
    """One raw completion of `prompt` followed by tokens already generated (when a completion
    resumes after an end-of-generation token under the ``continue`` policy). Engines that take
    token ids (llama-server) send the generated ids exactly; text-only engines send
    `prompt + generated_text` and let the server re-tokenize it."""

    prompt: str
    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    repeat_last_n: int
    seed: int | None
    n_probs: int
    generated_ids: tuple[int, ...] = ()
    generated_text: str = ""
    bias: Mapping[int, float] = field(default_factory=dict)  # id -> added logit
    ban: tuple[int, ...] = ()  # ids that must never be sampled (EOS ban)
    # the other samplers by llama-server's names (typical_p, presence_penalty, mirostat, ...), when
    # any is on (harness.generation.settings.EXTRA_SAMPLERS); empty: the server's defaults, all off
    samplers: Mapping[str, float] = field(default_factory=dict)


class RemoteEngine(Protocol):
    """A text-completion server that reports top-k probabilities."""

    info: ModelInfo  # path = the server URL; n_vocab 0 when unknown
    url: str
    kind: str  # "llama-server" or "openai"
    # top-k lists name tokens by id, each token once (llama-server); False: by text, where tokens
    # sharing a text may merge (OpenAI-compatible logprobs): only the looser entropy bound holds
    top_by_id: bool
    # completions the server decodes at once (llama-server's slots; 1: one after another)
    slots: int

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`, no BOS added; `special`: control-token strings are parsed (an
        engine that cannot say otherwise always parses them)."""

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (ids < 0: the text the server named it by)."""

    def token_id(self, text: str) -> int | None:
        """The id of `text` if it is exactly one token (its piece is then known to be `text`)."""

    def is_special(self, token: int) -> bool:
        """Whether a token is a control token, as far as the server lets harness know."""

    def canonical(self, token: int) -> int:
        """The final id of a token streamed under a provisional one. Engines that name tokens
        by text resolve ids only once a stream has ended (a request made while streaming may
        interrupt it: llama-cpp-python's server cancels the running completion)."""

    def complete(self, request: CompletionRequest,
                 should_stop: Callable[[], bool] | None = None) -> Iterator[RemoteStep | RemoteFinish]:
        """Stream the generated tokens, then one RemoteFinish. Closing the iterator early
        (generator ``close``) ends the request; so does `should_stop()` turning true, even while
        the server sends nothing (the stream then just ends)."""

    def close(self) -> None: ...
