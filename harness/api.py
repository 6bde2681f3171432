"""The Python API: open a model (or a server) with a template, then render, generate, stream
and score conversations. Every result's ``to_dict()`` is the JSON the CLI prints for the same
call (``generate --json``, ``score --json``), so a script and a shell pipeline agree.

    import harness
    with harness.open("smollm2", template="chatml") as m:
        g = m.generate([{"role": "user", "content": "Hi"}], eos="ban", max_tokens=16, seed=1)
        print(g.text, g.stop_reason, g.tokens[0].entropy_bits, g.tokens[0].role)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import CommandError
from harness.generation.records import (
    Generation,
    TokenRecord,
    generation_json,
    role_summaries,
    score_json,
)
from harness.generation.settings import SamplingParams
from harness.generation.turn import StreamEvent
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import Conversation
from harness.prompt.modes import REPLY, PromptPlan

Messages = Sequence[Mapping[str, Any]] | Conversation


def _conversation(messages: Messages) -> Conversation:
    return messages if isinstance(messages, Conversation) else Conversation.from_dicts(messages)


@dataclass
class GenerationResult:
    """One generated turn: ``text``, ``stop_reason``, ``tokens`` (each with ``role``,
    ``entropy_bits``, ``surprisal_bits``, ``stats``), the prompt's tokens and any warnings."""

    generation: Generation
    warnings: list[str]
    _bench: BaseWorkbench = field(repr=False)

    @property
    def text(self) -> str:
        return self.generation.text

    @property
    def stop_reason(self) -> str:
        return str(self.generation.stop_reason)

    @property
    def tokens(self) -> list[TokenRecord]:
        return self.generation.tokens

    @property
    def prompt_tokens(self) -> list[TokenRecord]:
        return self.generation.prompt_tokens

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        return role_summaries(self.generation.tokens)

    def to_dict(self) -> dict[str, Any]:
        """What ``harness generate --json`` prints for the same call."""
        return generation_json(self.generation, self._bench.piece_text) | {"warnings": list(self.warnings)}


@dataclass
class ScoreResult:
    """Teacher-forced statistics of a conversation as rendered: ``prompt``, ``tokens``, ``roles``."""

    prompt: str
    tokens: list[TokenRecord]
    warnings: list[str]
    _bench: BaseWorkbench = field(repr=False)

    @property
    def roles(self) -> dict[str, dict[str, Any]]:
        return role_summaries(self.tokens)

    def to_dict(self) -> dict[str, Any]:
        """What ``harness score --json`` prints for the same conversation."""
        return score_json(self.prompt, self.tokens, self._bench.piece_text) | {"warnings": list(self.warnings)}


class Stream:
    """The tokens of one generation as they come (iterate it); ``result`` once it has ended.
    Leaving the loop early stops the generation (stop reason ``interrupted``)."""

    def __init__(self, model: Model, conversation: Conversation, mode: str, text: str,
                 params: SamplingParams):
        self._events: queue.Queue[StreamEvent | None] = queue.Queue()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.result: GenerationResult | None = None

        def run() -> None:
            try:
                self.result = model._generate(conversation, mode, text, params, self._events.put,
                                              self._stop.is_set)
            except BaseException as exc:  # handed to the iterating thread
                self._error = exc
            finally:
                self._events.put(None)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[StreamEvent]:
        try:
            while (event := self._events.get()) is not None:
                yield event
        finally:
            self._stop.set()
            self._thread.join()
        if self._error is not None:
            raise self._error


class Model:
    """A workbench behind a small API. Sampling settings are keyword arguments named as in
    profiles and ``/set`` (temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed,
    max_tokens, stop, eos, logit_bias)."""

    def __init__(self, bench: BaseWorkbench, *, context_overflow: str = "error"):
        self.bench = bench
        self.context_overflow = context_overflow
        self._lock = threading.Lock()

    @property
    def info(self):
        return self.bench.info

    @property
    def template(self):
        return self.bench.template

    def render(self, messages: Messages, mode: str = REPLY, text: str = "") -> PromptPlan:
        """The exact prompt (``.prompt``) and its segments (``.segments``) for `mode`."""
        return self.bench.plan(_conversation(messages), mode, text)

    def generate(self, messages: Messages, mode: str = REPLY, text: str = "", **sampling: Any) -> GenerationResult:
        return self._generate(_conversation(messages), mode, text, self.sampling(**sampling), None, None)

    def stream(self, messages: Messages, mode: str = REPLY, text: str = "", **sampling: Any) -> Stream:
        return Stream(self, _conversation(messages), mode, text, self.sampling(**sampling))

    def score(self, messages: Messages) -> ScoreResult:
        with self._lock:
            plan, tokens = self.bench.score(_conversation(messages))
            warnings = [*self.bench.warnings, *(i.describe() for i in self.bench.injections(plan))]
        return ScoreResult(plan.prompt, tokens, warnings, self.bench)

    @staticmethod
    def sampling(**settings: Any) -> SamplingParams:
        """Sampling settings from keyword arguments (unknown names are refused)."""
        known = SamplingParams.__dataclass_fields__
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise CommandError(f"unknown sampling setting(s): {', '.join(unknown)}",
                               hint=f"known: {', '.join(known)}")
        if "stop" in settings:
            settings["stop"] = tuple([settings["stop"]] if isinstance(settings["stop"], str) else settings["stop"])
        return SamplingParams().updated(**settings)

    def _generate(self, conversation: Conversation, mode: str, text: str, params: SamplingParams,
                  on_token, should_stop) -> GenerationResult:
        with self._lock:  # one generation at a time on one model
            plan, _ = self.bench.fit_conversation(conversation, mode, text, self.context_overflow)
            warnings = [*self.bench.warnings, *(i.describe() for i in self.bench.injections(plan))]
            gen = self.bench.generate(plan, params, on_token=on_token, should_stop=should_stop)
        return GenerationResult(gen, warnings, self.bench)

    def close(self) -> None:
        self.bench.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(model: str | None = None, *, template: str | None = None, backend: str | None = None,
         variables: Mapping[str, Any] | None = None, n_ctx: int | None = None, threads: int | None = None,
         literal_content: bool = False, context_overflow: str = "error") -> Model:  # noqa: A001
    """Open `model` (a known name such as ``smollm2``, or a GGUF path; default smollm2) or the
    server at `backend` (a URL), with `template` (default: the model's embedded one)."""
    from harness.generation.open import open_workbench

    bench = open_workbench(model=model, backend=backend, template=template, variables=variables,
                           n_ctx=n_ctx, threads=threads, literal_content=literal_content)
    return Model(bench, context_overflow=context_overflow)
