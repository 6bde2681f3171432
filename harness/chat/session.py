"""Chat session state and `handle(line) -> events`; no terminal code.

The session owns the conversation tree (the chosen path is what the template renders), the
sampling settings and the workbench; each line is a user message or a slash command, and
everything the user should see goes out as an event (harness/chat/events.py). Commands live in
topic modules (edit, inspector, files, settings, replies) and :mod:`harness.chat.dispatch`
hands each line to one; this module keeps the state and the one place a turn is generated and
placed in the tree.

A generated turn adds the writer's own turn (the text up to where the model closed it);
anything the model wrote past that stays in the turn's record and the log. Every change of the
tree is undoable: the tree is an immutable value and undo/redo are stacks of trees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.chat.events import (  # noqa: F401  (re-exported: the display and tests import them here)
    Alternatives,
    EditRequest,
    Emit,
    EntropyReport,
    Event,
    MessageList,
    MessageShown,
    Notice,
    RawPrompt,
    TokenStreamed,
    TokenView,
    TurnFinished,
    TurnStarted,
)
from harness.chat.tree import Tree
from harness.errors import CommandError, StorageError
from harness.generation.records import Generation, role_summaries
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import ASSISTANT, Conversation, Message
from harness.prompt.modes import CONTINUE, REPLY
from harness.prompt.segments import CONTENT
from harness.prompt.turns import turn_roles, writer_turn

WorkbenchLoader = Callable[..., Workbench]  # (model, template, **n_ctx/threads) -> a workbench
Handler = Callable[["Session", str, Emit, Any], None]
UNDO_DEPTH = 200
PROGRESS_TOKENS = 256  # a prompt this many new tokens long gets a line before it is evaluated


@dataclass
class Session:
    bench: Workbench
    params: SamplingParams = field(default_factory=SamplingParams)
    tree: Tree = field(default_factory=Tree)
    loader: WorkbenchLoader | None = None
    log: Any = None  # a TurnLog, or None
    template_spec: str | None = None
    model_spec: str | None = None
    history: list[Generation] = field(default_factory=list)  # every turn generated, in order
    last_request: tuple[str, str] = (REPLY, "")
    context_overflow: str = "error"
    undo_stack: list[Tree] = field(default_factory=list)
    redo_stack: list[Tree] = field(default_factory=list)
    ui: dict[str, Any] = field(default_factory=lambda: {"shade": True, "multiline": False, "vi": False})
    inspected: int | None = None  # path index /alts and /branch act on (set by /tokens N)
    autosave: Any = None  # a SessionFile, or None
    profile_name: str | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)  # n_ctx, threads a reload keeps
    restore_notes: list[str] = field(default_factory=list)  # what a resume could not restore
    warned: set[tuple[int | None, str]] = field(default_factory=set)  # injections already warned of
    beyond: tuple[int, Message] | None = None  # (node id, the turn the model wrote past it): /adopt

    # -- the conversation --------------------------------------------------------------------
    @property
    def conversation(self) -> Conversation:
        return self.tree.conversation()

    @conversation.setter
    def conversation(self, value: Conversation) -> None:
        self.change(Tree.from_conversation(value))

    def change(self, tree: Tree) -> None:
        """Replace the tree, remembering the old one for /undo."""
        if tree is self.tree:
            return
        self.undo_stack.append(self.tree)
        del self.undo_stack[:-UNDO_DEPTH]
        self.redo_stack.clear()
        self.tree = tree

    def save(self, emit: Emit) -> None:
        if self.autosave is None:
            return
        try:
            self.autosave.save(self)
        except StorageError as exc:
            emit(Notice(f"{exc}; autosave is off for this session", "error"))
            self.autosave = None

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
            at = len(path) - 1 if mode == CONTINUE else len(path)
            base = path[-1] if mode == CONTINUE and path else None
        before = Conversation(path[:at] + ((base,) if base is not None else ()))
        params = params or self.params
        runs = self._run_many(before, mode, text, emit, should_stop, count, params) if count > 1 and not forced \
            else [self._run(before, mode, text, emit, should_stop, forced, params)]
        for gen, content, writer, used in runs:
            # `content` is the writer's whole turn: a continued message's text is already in it
            meta = {"gen": len(self.history), "mode": mode, "text": text, "seed": used.seed,
                    **({"base": base.to_dict()} if mode == CONTINUE and base is not None else {})}
            self.history.append(gen)
            self.inspected = None  # /alts and /branch now mean the newest turn
            message = gen.message or Message(writer, content)  # what re-renders as the model wrote it
            tree = self.tree.truncate(at).append(message, meta) if at >= len(self.conversation.messages) \
                else self.tree.add_alternative(at, message, meta)
            self.change(tree)
            self._log(gen, before, emit, used, {"message_index": at, "forced_tokens": len(forced)})
            beyond = _beyond(gen, writer, self.bench.turn_parser())
            self.beyond = (self.tree.node_at(at).id, beyond) if beyond is not None else None
            emit(TurnFinished(gen, writer, kept=_kept_note(writer, beyond)))
        return gen

    def _run(self, before: Conversation, mode: str, text: str, emit: Emit, should_stop,
             forced: Sequence[int], params: SamplingParams) -> tuple[Generation, str, str, SamplingParams]:
        """(generation, the writer's own text, the writer's role)."""
        plan, dropped = self.bench.fit_conversation(before, mode, text, self.context_overflow)
        if dropped:
            emit(Notice(f"context full: the {dropped} oldest message(s) are left out of this prompt "
                        f"(n_ctx {self.bench.info.n_ctx}); the conversation keeps them", "warning"))
        self._warn_injections(plan, before, emit)
        self.last_request = (mode, text)
        pending = self._uncached_tokens(plan)
        if pending >= PROGRESS_TOKENS:
            emit(Notice(f"evaluating {pending} prompt tokens ..."))
        emit(TurnStarted(plan.writer, mode, given=plan.opened))

        seen = [0]

        def on_token(event) -> None:
            stats = event.token.stats
            seen[0] += 1
            emit(TokenStreamed(event.text, event.role, stats.entropy_bits if stats else 0.0,
                               forced=seen[0] <= len(forced)))

        gen = self.bench.generate(plan, params, on_token=on_token, should_stop=should_stop,
                                  forced=forced)
        parser = self.bench.turn_parser()
        full = plan.opened + gen.text
        spans = parser.parse(full, parser.start_role(plan.writer, plan.mode))
        content, went_past = writer_turn(spans, full, plan.writer)
        return gen, content.rstrip() if went_past else content, plan.writer or ASSISTANT, params

    def _run_many(self, before: Conversation, mode: str, text: str, emit: Emit, should_stop,
                  count: int, base: SamplingParams) -> list[tuple[Generation, str, str, SamplingParams]]:
        """`count` candidates after one prompt, decoded together (not streamed); seeds seed,
        seed + 1, ... when a seed is set."""
        plan, _ = self.bench.fit_conversation(before, mode, text, self.context_overflow)
        self.last_request = (mode, text)
        emit(TurnStarted(plan.writer, mode, given=plan.opened))
        seed = base.seed
        params = [base if seed is None else base.updated(seed=seed + i) for i in range(count)]
        parser = self.bench.turn_parser()
        out = []
        for gen, used in zip(self.bench.generate_many(plan, params, should_stop=should_stop), params, strict=False):
            full = plan.opened + gen.text
            spans = parser.parse(full, parser.start_role(plan.writer, plan.mode))
            content, went_past = writer_turn(spans, full, plan.writer)
            out.append((gen, content.rstrip() if went_past else content, plan.writer or ASSISTANT, used))
        return out

    def _uncached_tokens(self, plan) -> int:
        """Prompt tokens the model has yet to evaluate (beyond its cached prefix)."""
        cached = getattr(getattr(self.bench, "evaluator", None), "tokens", None)
        if cached is None:
            return 0
        ids = [r.id for r in self.bench.prompt_records(plan)]
        shared = 0
        while shared < min(len(cached), len(ids)) and cached[shared] == ids[shared]:
            shared += 1
        return len(ids) - shared

    def _warn_injections(self, plan, before: Conversation, emit: Emit) -> None:
        """Warn once per message whose content becomes control tokens, naming the message."""
        for injection in self.bench.injections(plan):
            text = plan.prompt[injection.start:injection.end]
            index = next((i for i, m in enumerate(before) if text and text in m.text), None)
            key = (index, text)
            if key in self.warned:
                continue
            self.warned.add(key)
            where = f"message {index} ({injection.role})" if index is not None else f"{injection.role} text"
            emit(Notice(f"{where} contains control token(s) {', '.join(injection.tokens)}; the model "
                        "sees them as control tokens (/set literal_content on keeps them text)", "warning"))

    def _log(self, gen: Generation, before: Conversation, emit: Emit, params: SamplingParams,
             place: dict[str, int]) -> None:
        if self.log is None:
            return
        from harness.generation.records import generation_json

        record = {"time": time.time(), "model": self.bench.info.name, "model_path": str(self.bench.info.path),
                  "template": self.bench.template.name, "model_spec": self.model_spec,
                  "template_spec": self.template_spec, "backend": getattr(self.bench.engine, "url", None),
                  "settings": params.to_dict(),  # as used (a retry's seed moves on)
                  "messages_before": before.to_dicts(), "messages": self.conversation.to_dicts(),
                  **generation_json(gen, self.bench.piece_text)}
        record.pop("prompt_tokens")  # per-role prompt summary is kept; the prompt text is too
        record["interrupted"] = gen.stop_reason == "interrupted"
        record.update(place)  # where the turn went; forced_tokens > 0 for a /branch
        try:
            self.log.append(record)
        except StorageError as exc:
            emit(Notice(f"{exc}; the turn is kept in this session but not logged", "error"))

    # -- what the display and toolbar read ---------------------------------------------------
    def generation_at(self, index: int) -> tuple[int, Generation]:
        """(path index, generation) of message `index`, or of the last generated message."""
        path = self.tree.path()
        if index < 0:
            index = next((i for i in range(len(path) - 1, -1, -1) if "gen" in path[i].meta), -1)
            if index < 0:
                raise CommandError("no generated turn in the conversation yet")
        node = self.tree.node_at(index)
        if "gen" not in node.meta or not 0 <= node.meta["gen"] < len(self.history):
            raise CommandError(f"message {index} was not generated in this session",
                               hint="/messages marks generated messages with *")
        return index, self.history[node.meta["gen"]]

    def reset(self) -> None:
        """A fresh conversation (one undo step); settings, model and template stay."""
        self.change(Tree())
        self.inspected, self.beyond = None, None

    def session_roles(self) -> dict[str, dict[str, Any]]:
        return role_summaries([t for g in self.history for t in g.tokens])


def _beyond(gen: Generation, writer: str, parser) -> Message | None:
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
