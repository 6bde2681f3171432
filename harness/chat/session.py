"""A chat session: a few parts, each with one owner, and the one place a turn is placed.

    Session
    ├── engine      EngineHandle  the workbench; model, template, variables, literal content
    │                             (harness.chat.engine_handle)
    ├── trees       TreeHistory   the conversation tree and its undo/redo (harness.chat.tree_history)
    ├── transcript  Transcript    every generated turn; what is inspected, adoptable, warned of
    │                             (harness.chat.transcript)
    ├── settings    TurnSettings  sampling, context overflow, profile: frozen, replaced whole by
    │                             the settings commands (harness.chat.turn_settings)
    ├── prefs       Prefs         a front end's display switches (declared by harness.repl.prefs)
    └── io          SessionIO     the turn log and the autosave file (harness.chat.session_io)

Each part's state changes only through its own methods. :meth:`Session.generate` is the one
orchestrator: it runs the turn (harness.generation.request.run_turn: fit the context, warn about
injections, generate), places the writer's turn in the tree, keeps the generation, logs it and
emits what the user should see as events (harness.chat.events). No terminal code here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.chat.engine_handle import EngineHandle, WorkbenchLoader
from harness.chat.events import Emit, Notice, TokenStreamed, TurnFinished, TurnStarted
from harness.chat.prefs import Prefs
from harness.chat.session_io import SessionIO
from harness.chat.transcript import Transcript
from harness.chat.tree import Tree
from harness.chat.tree_history import TreeHistory
from harness.chat.turn_settings import TurnSettings
from harness.errors import CommandError
from harness.generation.evaluation import Injection
from harness.generation.records import Generation, generation_json
from harness.generation.request import (
    PreparedTurn,
    TurnRequest,
    TurnResult,
    pending_notice,
    run_turn,
)
from harness.generation.settings import OVERFLOW_ERROR, SamplingParams
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import Conversation, Message
from harness.prompt.modes import CONTINUE
from harness.prompt.segments import CONTENT
from harness.prompt.turns import TurnParser, turn_roles

Handler = Callable[["Session", str, Emit, Any], None]
PROGRESS_TOKENS = 256  # a prompt this many new tokens long gets a line before it is evaluated


class Session:
    """The parts of one chat. Build it from a workbench (the keywords fill the parts), or hand
    it ready parts (a resumed session)."""

    def __init__(self, bench: BaseWorkbench | None = None, *, engine: EngineHandle | None = None,
                 params: SamplingParams | None = None, context_overflow: str = OVERFLOW_ERROR,
                 profile: str | None = None, settings: TurnSettings | None = None,
                 trees: TreeHistory | None = None, transcript: Transcript | None = None,
                 prefs: Prefs | None = None, io: SessionIO | None = None,
                 loader: WorkbenchLoader | None = None, model_spec: str | None = None,
                 template_spec: str | None = None, engine_options: Mapping[str, Any] | None = None):
        if (bench is None) == (engine is None):
            raise ValueError("a session needs a workbench or an engine handle")
        self.engine = engine or EngineHandle(bench, model_spec=model_spec, template_spec=template_spec,  # type: ignore[arg-type]
                                             loader=loader, options=engine_options)
        self.settings = settings or TurnSettings(params or SamplingParams(), context_overflow, profile)
        self.trees = trees or TreeHistory()
        self.transcript = transcript or Transcript()
        self.prefs = prefs if prefs is not None else Prefs()
        self.io = io or SessionIO()

    # -- what most readers want --------------------------------------------------------------
    @property
    def bench(self) -> BaseWorkbench:
        return self.engine.bench

    @property
    def params(self) -> SamplingParams:
        return self.settings.params

    @property
    def tree(self) -> Tree:
        return self.trees.tree

    @property
    def conversation(self) -> Conversation:
        return self.trees.conversation

    def save(self, emit: Emit) -> None:
        self.io.save(self, emit)

    # -- generation --------------------------------------------------------------------------
    def generate(self, mode: str, text: str, emit: Emit, should_stop, *, at: int | None = None,
                 base: Message | None = None, forced: Sequence[int] = (),
                 params: SamplingParams | None = None, count: int = 1) -> Generation:
        """Generate a turn and place it in the tree.

        `at` None: after the conversation (for continue: as an alternative of the last message).
        `at` an index: as a new alternative of message `at`, prompted by the messages before it
        (plus `base`, the message a continue turn continued). `params`: these settings for this
        turn only (a retry's new seed). `count` > 1: that many candidates decoded together, each
        placed as an alternative (the last one chosen); seeds seed, seed + 1, ... when one is set."""
        path = self.conversation.messages
        if at is None:
            at = len(path) - 1 if mode == CONTINUE and path else len(path)
            base = path[-1] if mode == CONTINUE and path else None
        before = Conversation(path[:at] + ((base,) if base is not None else ()))
        request = TurnRequest(before, mode, text, params or self.params, self.settings.context_overflow,
                              tuple(forced))
        results = run_turn(self.bench, request, n=1 if forced else count,
                           on_prepared=lambda prepared: self._announce(prepared, request, emit),
                           on_token=None if count > 1 and not forced else _streamer(emit, len(forced)),
                           should_stop=should_stop)
        parser = self.bench.turn_parser()
        for result in results:
            self._place(result, request, at, base, emit, parser)
        return results[-1].generation

    def _announce(self, prepared: PreparedTurn, request: TurnRequest, emit: Emit) -> None:
        """The notices of a fitted prompt, then the turn's start."""
        self.transcript.asked(request.mode, request.text)
        dropped = prepared.dropped_notice()
        if dropped:
            emit(Notice(dropped, "warning"))
        self._warn_injections(prepared, request.conversation, emit)
        pending = pending_notice(self.bench, prepared, PROGRESS_TOKENS)
        if pending:
            emit(Notice(pending))
        emit(TurnStarted(prepared.plan.writer, request.mode, given=prepared.plan.opened))

    def _place(self, result: TurnResult, request: TurnRequest, at: int, base: Message | None, emit: Emit,
               parser: TurnParser) -> None:
        """One candidate into the tree (at `at`), the transcript and the log."""
        gen, writer = result.generation, result.writer
        meta = {"gen": len(self.transcript), "mode": request.mode, "text": request.text, "seed": result.params.seed,
                **({"base": base.to_dict()} if request.mode == CONTINUE and base is not None else {})}
        self.transcript.record(gen)
        message = result.writer_message()
        tree = self.tree.truncate(at).append(message, meta) if at >= len(self.conversation.messages) \
            else self.tree.add_alternative(at, message, meta)
        self.trees.change(tree)
        self.io.log_turn(self._log_record(gen, request.conversation, result.params,
                                          {"message_index": at, "forced_tokens": len(request.forced)}), emit)
        beyond = _beyond(gen, writer, parser)
        self.transcript.ran_past(self.tree.node_at(at).id, beyond)
        emit(TurnFinished(gen, writer, kept=_kept_note(writer, beyond)))

    def _warn_injections(self, prepared: PreparedTurn, before: Conversation, emit: Emit) -> None:
        """Warn once per message whose content becomes control tokens, naming the message."""
        for injection in prepared.injections:
            if not isinstance(injection, Injection):  # a role or name field: no message text to find
                if self.transcript.first_warning((None, injection.what)):
                    emit(Notice(injection.describe(), "warning"))
                continue
            text = prepared.plan.prompt[injection.start:injection.end]
            index = next((i for i, m in enumerate(before) if text and text in m.text), None)
            if not self.transcript.first_warning((index, text)):
                continue
            where = f"message {index} ({injection.role})" if index is not None else f"{injection.role} text"
            emit(Notice(f"{where} contains control token(s) {', '.join(injection.tokens)}; the model "
                        "sees them as control tokens (/set literal_content on keeps them text)", "warning"))

    def _log_record(self, gen: Generation, before: Conversation, params: SamplingParams,
                    place: dict[str, int]) -> dict[str, Any]:
        """The turn log's line for a turn (settings as used: a retry's seed moves on)."""
        bench = self.bench
        record = {"time": time.time(), "model": bench.info.name, "model_path": str(bench.info.path),
                  "template": bench.template.name, "model_spec": self.engine.model_spec,
                  "template_spec": self.engine.template_spec, "backend": bench.backend_url,
                  "settings": params.to_dict(),
                  "messages_before": before.to_dicts(), "messages": self.conversation.to_dicts(),
                  **generation_json(gen, bench.piece_text)}
        record.pop("prompt_tokens")  # per-role prompt summary is kept; the prompt text is too
        record["interrupted"] = gen.stop_reason == "interrupted"
        record.update(place)  # where the turn went; forced_tokens > 0 for a /branch
        return record

    # -- what the display and toolbar read ---------------------------------------------------
    def generation_at(self, index: int) -> tuple[int, Generation]:
        """(path index, generation) of message `index`, or of the last generated message."""
        path = self.tree.path()
        if index < 0:
            index = next((i for i in range(len(path) - 1, -1, -1) if "gen" in path[i].meta), -1)
            if index < 0:
                raise CommandError("no generated turn in the conversation yet")
        node = self.tree.node_at(index)
        if "gen" not in node.meta or not 0 <= node.meta["gen"] < len(self.transcript):
            raise CommandError(f"message {index} was not generated in this session",
                               hint="/messages marks generated messages with *")
        return index, self.transcript[node.meta["gen"]]

    def reset(self) -> None:
        """A fresh conversation (one undo step); settings, model and template stay."""
        self.trees.change(Tree())
        self.transcript.forget_view()


def _streamer(emit: Emit, forced: int) -> Callable[[Any], None]:
    """Each streamed token as an event (the first `forced` ones were chosen by the user)."""
    seen = [0]

    def on_token(event) -> None:
        stats = event.token.stats
        seen[0] += 1
        emit(TokenStreamed(event.text, event.role, stats.entropy_bits if stats else 0.0, forced=seen[0] <= forced))

    return on_token


def _beyond(gen: Generation, writer: str, parser: TurnParser) -> Message | None:
    """The turn the model wrote right after its own (a run past end of turn), if any."""
    role, parts, own = None, [], turn_roles(writer)
    for span in parser.parse(gen.text, writer):
        if role is not None and (span.kind != CONTENT or span.role != role):
            break  # its close (or the next turn) ends it
        if span.kind != CONTENT or span.role in own:
            continue
        role = span.role
        parts.append(gen.text[span.start:span.end])
    text = "".join(parts).strip()
    return Message(role, text) if role and text else None


def _kept_note(writer: str, beyond: Message | None) -> str:
    if beyond is None:
        return ""
    return (f"only the {writer} turn was kept; the model went on as {beyond.role} "
            f"({len(beyond.content)} chars): /adopt makes that the next {beyond.role} message")
