"""The Python API: open a model (or a server) with a template, then render, generate, stream
and score conversations. Every result's ``to_dict()`` is the JSON the CLI prints for the same
call (``generate --json``, ``score --json``): the CLI's ``generate`` and ``score`` run through here.

    import harness
    with harness.open("smollm2", template="chatml", temperature=0.7) as m:
        g = m.generate([{"role": "user", "content": "Hi"}], eos="ban", max_tokens=16, seed=1)
        print(g.text, g.stop_reason, g.tokens[0].entropy_bits, g.tokens[0].role)
        for candidate in m.generate([{"role": "user", "content": "Hi"}], n=3, seed=1):
            print(candidate.text)
        with m.stream([{"role": "user", "content": "Hi"}]) as s:
            for event in s:
                print(event.text, end="")

Settings are checked as profiles check them (harness.generation.settings): a wrong type or value
is a :class:`~harness.errors.HarnessError` whose ``field`` names the argument. Defaults merge into
each call: the settings a call names over the model's defaults (``harness.open(...,
temperature=0.2)``) over its profile's (``profile=``); a call's ``logit_bias`` adds to the
defaults' biases. A model generates one turn at a time (a lock); :meth:`Model.close` stops
running streams and waits for them, and every call after it is a HarnessError.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from harness.errors import CommandError, HarnessError
from harness.generation.records import TokenRecord
from harness.generation.request import TurnRequest, run_turn
from harness.generation.results import GenerationResult, ScoreResult, token_names
from harness.generation.settings import SamplingParams, check_overflow, merged_sampling
from harness.generation.turn import StopReason, StreamEvent
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import Conversation
from harness.prompt.mode_names import MODES, REPLY
from harness.prompt.modes import PromptPlan

Messages = Sequence[Mapping[str, Any]] | Conversation


def _fail(name: str, expected: str, value: Any) -> CommandError:
    return CommandError(f"{name}: expected {expected}, got {value!r}", field=name)


def _conversation(messages: Any) -> Conversation:
    if isinstance(messages, Conversation):
        return messages
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise _fail("messages", "a list of {role, content} mappings or a Conversation", messages)
    return Conversation.from_dicts(messages)


def _mode_text(mode: Any, text: Any) -> tuple[str, str]:
    if mode not in MODES:
        raise _fail("mode", f"one of {', '.join(MODES)}", mode)
    if not isinstance(text, str):
        raise _fail("text", "a string", text)
    return str(mode), text


class Stream:
    """The tokens of one generation as they come: iterate it (or use it in ``with``); ``result``
    once it has ended. Nothing runs until the first iteration. Leaving the loop early, or
    :meth:`close`, stops the generation (stop reason ``interrupted``) and waits for it; a finished
    stream iterates as empty."""

    def __init__(self, model: Model, request: TurnRequest):
        self._model, self._request = model, request
        self._events: queue.Queue[StreamEvent | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._done = False
        self.result: GenerationResult | None = None

    def _start(self) -> None:
        self._model._check_open()

        def run() -> None:
            try:
                self.result = self._model._run(self._request, 1, self._events.put, self._stop.is_set)[0]
            except BaseException as exc:  # handed to the iterating thread
                self._error = exc
            finally:
                self._events.put(None)

        self._thread = threading.Thread(target=run, name="harness stream", daemon=True)
        self._model._streams.add(self)
        self._thread.start()

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._done:
            return
        if self._thread is None:
            self._start()
        try:
            while (event := self._events.get()) is not None:
                yield event
        finally:
            self.close()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Stop the generation if it runs and wait for it to end (safe to call again)."""
        self._stop.set()
        self._done = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._model._streams.discard(self)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Model:
    """A workbench behind a small API. Sampling settings are keyword arguments named as in
    profiles and ``/set`` (temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed,
    max_tokens, stop, eos, logit_bias); `defaults` are merged into every call."""

    def __init__(self, bench: BaseWorkbench, *, context_overflow: str = "error",
                 defaults: SamplingParams | None = None):
        self.bench = bench
        self.context_overflow = check_overflow(context_overflow)
        self.defaults = defaults or SamplingParams()
        self._lock = threading.Lock()  # one turn at a time on one model
        self._state = threading.Lock()  # guards _closed and _close_pending
        self._closed = False
        self._close_pending = False
        self._generating: int | None = None  # the thread id running a turn
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()

    @property
    def info(self):
        return self.bench.info

    @property
    def template(self):
        return self.bench.template

    @property
    def closed(self) -> bool:
        return self._closed or self._close_pending

    def _check_open(self) -> None:
        if self.closed:
            raise CommandError("the model is closed", hint="open it again with harness.open(...)")

    def render(self, messages: Messages, mode: str = REPLY, text: str = "") -> PromptPlan:
        """The exact prompt (``.prompt``) and its segments (``.segments``) for `mode`."""
        conversation = _conversation(messages)
        mode, text = _mode_text(mode, text)
        with self._lock:
            self._check_open()
            return self.bench.plan(conversation, mode, text)

    def generate(self, messages: Messages, mode: str = REPLY, text: str = "", *, n: int | None = None,
                 on_token: Callable[[StreamEvent], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 **sampling: Any) -> GenerationResult | list[GenerationResult]:
        """One turn; with `n`, a list of `n` candidates decoded together (seeds seed, seed + 1,
        ... when a seed is set). `on_token` hears each token of a single turn as it comes;
        `should_stop` ends the turn early (stop reason ``interrupted``)."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise _fail("n", "a whole number >= 1", n)
        results = self._run(self._request(messages, mode, text, sampling), n or 1, on_token, should_stop)
        return results if n is not None else results[0]

    def stream(self, messages: Messages, mode: str = REPLY, text: str = "", **sampling: Any) -> Stream:
        """A :class:`Stream` of this turn's tokens (started by the first iteration)."""
        self._check_open()
        return Stream(self, self._request(messages, mode, text, sampling))

    def score(self, messages: Messages) -> ScoreResult:
        conversation = _conversation(messages)
        with self._lock:
            self._check_open()
            plan, tokens = self.bench.score(conversation)
            warnings = [*self.bench.warnings, *(i.describe() for i in self.bench.injections(plan))]
            names = token_names(self.bench, tokens)
        return ScoreResult(plan.prompt, tokens, warnings, names, self.bench.decode_path)

    def sampling(self, **settings: Any) -> SamplingParams:
        """These settings over the model's defaults, checked (unknown names and bad values are
        HarnessErrors naming the setting); `stop` may be one string; a `logit_bias` adds to the
        defaults' biases."""
        return merged_sampling(self.defaults, settings)

    def _request(self, messages: Any, mode: Any, text: Any, sampling: dict[str, Any]) -> TurnRequest:
        conversation = _conversation(messages)
        mode, text = _mode_text(mode, text)
        return TurnRequest(conversation, mode, text, self.sampling(**sampling), self.context_overflow)

    def _run(self, request: TurnRequest, n: int, on_token, should_stop) -> list[GenerationResult]:
        with self._lock:
            self._check_open()
            self._generating = threading.get_ident()
            try:
                turns = run_turn(self.bench, request, n=n, on_token=on_token,
                                 should_stop=lambda: self.closed or bool(should_stop and should_stop()))
                return [GenerationResult(t, token_names(self.bench, [*t.generation.tokens, *t.generation.prompt_tokens]))
                        for t in turns]
            finally:
                self._generating = None
                if self._close_pending:
                    self._close_now()

    def close(self) -> None:
        """Stop running streams, wait for the turn in progress, then free the model. Called from
        inside a turn (an `on_token` callback), the turn stops and the model closes after it."""
        with self._state:
            if self._closed or self._close_pending:
                return
            self._close_pending = True
        for stream in list(self._streams):
            stream._stop.set()
        if self._generating == threading.get_ident():
            return  # this thread is in a turn: it closes the model when the turn ends
        with self._lock:
            self._close_now()
        for stream in list(self._streams):
            stream.close()

    def _close_now(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
        self.bench.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_options(model: Any, template: Any, backend: Any, variables: Any, n_ctx: Any, threads: Any,
                   literal_content: Any, profile: Any, engine: Any) -> None:
    """Every argument of :func:`open` of the wrong type, as a HarnessError naming it."""
    for name, value in (("model", model), ("template", template), ("backend", backend)):
        if value is not None and not isinstance(value, str | os.PathLike):
            raise _fail(name, "a string", value)
    for name, value in (("n_ctx", n_ctx), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise _fail(name, "a whole number > 0", value)
    if variables is not None and not isinstance(variables, Mapping):
        raise _fail("variables", "a mapping of template variables", variables)
    if literal_content is not None and not isinstance(literal_content, bool):
        raise _fail("literal_content", "True or False", literal_content)
    if engine is not None and not isinstance(engine, Mapping):
        raise _fail("engine", "a mapping of llama.cpp load options", engine)
    from harness.generation.profiles import Profile

    if profile is not None and not isinstance(profile, str | Profile):
        raise _fail("profile", "a profile name, a YAML path or a Profile", profile)


def open(model: str | os.PathLike | None = None, *, template: str | None = None,  # noqa: A001
         backend: str | None = None, variables: Mapping[str, Any] | None = None, n_ctx: int | None = None,
         threads: int | None = None, literal_content: bool | None = None, context_overflow: str | None = None,
         profile: Any = None, engine: Mapping[str, Any] | None = None, **sampling: Any) -> Model:
    """Open `model` (a known name such as ``smollm2``, or a GGUF path; default smollm2) or the
    server at `backend` (a URL), with `template` (default: the model's embedded one).

    `profile` (a name, a YAML path or a loaded Profile) fills in what is not given: model,
    template, variables, n_ctx, literal content, context overflow, llama.cpp options and the
    sampling defaults; `sampling` keywords are defaults over the profile's for every call.
    `engine`: llama.cpp load options (n_gpu_layers, flash_attn, type_k, type_v, use_mmap, n_batch)."""
    from harness.backends.base import EngineOptions
    from harness.generation.open import open_workbench, workbench_options
    from harness.generation.profiles import Profile, default_profile, load_profile

    _check_options(model, template, backend, variables, n_ctx, threads, literal_content, profile, engine)
    if context_overflow is not None:
        check_overflow(context_overflow)
    chosen = profile if isinstance(profile, Profile) else load_profile(profile) if profile else default_profile()
    defaults = merged_sampling(chosen.sampling, sampling)
    try:
        options = EngineOptions.from_mapping(dict(engine)) if engine else None
    except ValueError as exc:
        raise CommandError(f"engine.{exc}", field="engine") from None
    explicit = {"model": os.fspath(model) if model is not None else None, "backend": backend,
                "template": template, "variables": dict(variables) if variables else None, "n_ctx": n_ctx,
                "threads": threads, "literal_content": literal_content, "engine": options}
    bench = open_workbench(**workbench_options(explicit, chosen))
    return Model(bench, context_overflow=context_overflow or chosen.context_overflow, defaults=defaults)


def render(messages: Messages, *, template: str | None = None, model: str | os.PathLike | None = None,
           mode: str = REPLY, text: str = "", variables: Mapping[str, Any] | None = None) -> PromptPlan:
    """The prompt a template makes of `messages`, without loading a model: `template` (a library
    name, a .jinja path; gguf or None: `model`'s embedded template, read from its file)."""
    from harness.generation.open import choose_template
    from harness.prompt.modes import plan_prompt

    _check_options(model, template, None, variables, None, None, None, None, None)
    conversation = _conversation(messages)
    mode, text = _mode_text(mode, text)
    values: dict[str, Any] = {}
    embedded, name = None, "model"
    if model is not None:
        from harness.models.gguf import read_gguf_info
        from harness.models.registry import resolve_model

        name, path = resolve_model(os.fspath(model))
        info = read_gguf_info(path)
        embedded = info.chat_template
        values = {"bos_token": info.bos_token or "", "eos_token": info.eos_token or ""}
    elif template is None:
        raise CommandError("render needs a template (or a model to use its embedded template)", field="template")
    values.update(variables or {})
    return plan_prompt(conversation, choose_template(template, embedded, name), mode, text=text, variables=values)


__all__ = ["GenerationResult", "HarnessError", "Model", "ScoreResult", "StopReason", "Stream", "StreamEvent",
           "TokenRecord", "open", "render"]
