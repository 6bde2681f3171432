"""Chat session state and `handle(line) -> events`; no terminal code.

The session owns the conversation, the sampling settings and the workbench; each line is a
user message or a slash command, and everything the user should see goes out as an event the
REPL's display renders. A generated turn adds the writer's own turn to the conversation (the
text up to where the model closed it); anything the model wrote past that stays in the turn's
record and the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.conversation import ASSISTANT, USER, Conversation
from harness.errors import CommandError, HarnessError, StorageError
from harness.modes import CONTINUE, IMPERSONATE, PREFILL, REPLY
from harness.records import Generation, role_summaries
from harness.sampling import EOS_POLICIES, SamplingParams
from harness.session_settings import apply_setting, describe_settings
from harness.slash import BY_NAME, help_text, parse_line
from harness.turns import TurnParser, writer_turn
from harness.workbench import Workbench


@dataclass(frozen=True)
class Notice:
    text: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class TurnStarted:
    writer: str | None
    mode: str


@dataclass(frozen=True)
class TokenStreamed:
    text: str
    role: str
    entropy_bits: float


@dataclass(frozen=True)
class TurnFinished:
    generation: Generation
    added: str  # role of the message added to the conversation


@dataclass(frozen=True)
class RawPrompt:
    prompt: str
    pieces: list[tuple[str, str, bool]]  # (piece text, role, is special)


@dataclass(frozen=True)
class EntropyReport:
    rows: dict[str, dict[str, dict[str, Any]]]  # scope -> role -> summary


Event = Notice | TurnStarted | TokenStreamed | TurnFinished | RawPrompt | EntropyReport
Emit = Callable[[Event], None]
WorkbenchLoader = Callable[[str | None, str | None], Workbench]


@dataclass
class Session:
    bench: Workbench
    params: SamplingParams = field(default_factory=SamplingParams)
    conversation: Conversation = field(default_factory=Conversation)
    loader: WorkbenchLoader | None = None
    log: Any = None  # a TurnLog, or None
    template_spec: str | None = None
    model_spec: str | None = None
    history: list[Generation] = field(default_factory=list)
    last_request: tuple[str, str] = (REPLY, "")
    context_overflow: str = "error"

    # -- entry point -------------------------------------------------------------------------
    def handle(self, line: str, emit: Emit, should_stop: Callable[[], bool] | None = None) -> None:
        """Act on one input line. Raises EOFError for /quit; reports errors as Notices."""
        name, arg = parse_line(line.rstrip("\n"))
        try:
            if name is None:
                if arg.strip():
                    self.conversation = self.conversation.append(USER, arg)
                    self._generate(REPLY, "", emit, should_stop)
                return
            if name not in BY_NAME:
                raise CommandError(f"unknown command /{name}", hint="/help lists them")
            getattr(self, f"cmd_{name}")(arg, emit, should_stop)
        except HarnessError as exc:
            emit(Notice(str(exc), "error"))

    # -- generation --------------------------------------------------------------------------
    def _generate(self, mode: str, text: str, emit: Emit, should_stop) -> Generation:
        plan, dropped = self.bench.fit_conversation(self.conversation, mode, text, self.context_overflow)
        if dropped:
            emit(Notice(f"context full: the {dropped} oldest message(s) are left out of this prompt "
                        f"(n_ctx {self.bench.backend.info.n_ctx}); the conversation keeps them", "warning"))
        for injection in self.bench.injections(plan):
            emit(Notice(injection.describe(), "warning"))
        self.last_request = (mode, text)
        emit(TurnStarted(plan.writer, mode))

        def on_token(event) -> None:
            stats = event.token.stats
            emit(TokenStreamed(event.text, event.role, stats.entropy_bits if stats else 0.0))

        before = self.conversation
        gen = self.bench.generate(plan, self.params, on_token=on_token, should_stop=should_stop)
        parser = TurnParser(self.bench.markers,
                            [self.bench.piece_text(i) for i in self.bench.backend.info.eog_ids])
        full = plan.opened + gen.text
        content, went_past = writer_turn(parser.parse(full, plan.writer), full, plan.writer)
        if went_past:
            content = content.rstrip()
        if mode == CONTINUE:
            self.conversation = before.drop_last().append(plan.writer or ASSISTANT, content)
        else:
            self.conversation = before.append(plan.writer or ASSISTANT, content)
        self.history.append(gen)
        self._log(gen, before, emit)
        emit(TurnFinished(gen, plan.writer or ASSISTANT))
        return gen

    def _log(self, gen: Generation, before: Conversation, emit: Emit) -> None:
        if self.log is None:
            return
        from harness.records import generation_json

        record = {"time": time.time(), "model": self.bench.backend.info.name,
                  "template": self.bench.template.name, "settings": self.params.to_dict(),
                  "messages_before": before.to_dicts(), "messages": self.conversation.to_dicts(),
                  **generation_json(gen, self.bench.piece_text)}
        record.pop("prompt_tokens")  # per-role prompt summary is kept; the prompt text is too
        record["interrupted"] = gen.stop_reason == "interrupted"
        try:
            self.log.append(record)
        except StorageError as exc:
            emit(Notice(f"{exc}; the turn is kept in this session but not logged", "error"))

    # -- commands ----------------------------------------------------------------------------
    def cmd_help(self, arg: str, emit: Emit, should_stop) -> None:
        emit(Notice(help_text(arg)))

    def cmd_quit(self, arg: str, emit: Emit, should_stop) -> None:
        raise EOFError

    def cmd_reply(self, arg: str, emit: Emit, should_stop) -> None:
        self._generate(REPLY, "", emit, should_stop)

    def cmd_impersonate(self, arg: str, emit: Emit, should_stop) -> None:
        self._generate(IMPERSONATE, arg, emit, should_stop)

    def cmd_prefill(self, arg: str, emit: Emit, should_stop) -> None:
        if not arg:
            raise CommandError("usage: /prefill TEXT")
        self._generate(PREFILL, arg, emit, should_stop)

    def cmd_continue(self, arg: str, emit: Emit, should_stop) -> None:
        self._generate(CONTINUE, "", emit, should_stop)

    def cmd_retry(self, arg: str, emit: Emit, should_stop) -> None:
        if not self.history:
            raise CommandError("nothing to retry yet")
        mode, text = self.last_request
        if mode == CONTINUE:
            raise CommandError("/retry after /continue is not supported; /undo and edit instead")
        self.conversation = self.conversation.drop_last()
        self._generate(mode, text, emit, should_stop)

    def cmd_undo(self, arg: str, emit: Emit, should_stop) -> None:
        if not len(self.conversation):
            raise CommandError("the conversation is empty")
        removed = self.conversation.last
        self.conversation = self.conversation.drop_last()
        emit(Notice(f"removed the last {removed.role} message"))

    def cmd_eos(self, arg: str, emit: Emit, should_stop) -> None:
        if arg not in EOS_POLICIES:
            raise CommandError(f"usage: /eos {'|'.join(EOS_POLICIES)}")
        self.params = self.params.updated(eos=arg)
        emit(Notice(f"EOS policy: {arg}"))

    def cmd_bias(self, arg: str, emit: Emit, should_stop) -> None:
        token, _, value = arg.rpartition(" ")
        if not token:
            raise CommandError("usage: /bias TOKEN VALUE|off")
        bias = dict(self.params.logit_bias)
        if value in ("off", "clear", "none"):
            bias.pop(token, None)
        else:
            try:
                number = float(value)
            except ValueError:
                raise CommandError(f"bias value '{value}' is not a number (or off)") from None
            from harness.generate import resolve_bias

            resolve_bias(self.bench.backend, {token: number})  # reject a bad token now
            bias[token] = number
        self.params = self.params.updated(logit_bias=bias)
        emit(Notice(f"logit biases: {bias or 'none'}"))

    def cmd_template(self, arg: str, emit: Emit, should_stop) -> None:
        from harness.paths import user_templates_dir
        from harness.workbench import choose_template

        info = self.bench.backend.info
        template = choose_template(arg or None, info.chat_template, info.name, user_templates_dir())
        self.bench.set_template(template)
        self.template_spec = arg or None
        emit(Notice(f"template: {template.name}"))

    def cmd_model(self, arg: str, emit: Emit, should_stop) -> None:
        if not arg or self.loader is None:
            raise CommandError("usage: /model NAME|PATH")
        emit(Notice(f"loading {arg} ..."))
        bench = self.loader(arg, self.template_spec)
        old, self.bench, self.model_spec = self.bench, bench, arg
        old.close()
        emit(Notice(f"model: {bench.backend.info.name}  template: {bench.template.name}"))

    def cmd_system(self, arg: str, emit: Emit, should_stop) -> None:
        self.conversation = self.conversation.with_system(arg or None)
        emit(Notice("system prompt set" if arg else "system prompt removed"))

    def cmd_set(self, arg: str, emit: Emit, should_stop) -> None:
        if not arg:
            emit(Notice(describe_settings(self)))
            return
        key, _, value = arg.partition(" ")
        emit(Notice(apply_setting(self, key, value.strip())))

    def cmd_raw(self, arg: str, emit: Emit, should_stop) -> None:
        from harness.evaluation import encode_prompt

        mode = IMPERSONATE if arg == "impersonate" else (AS_IS_RAW if arg == "as-is" else REPLY)
        plan = self.bench.plan(self.conversation, mode)
        records = encode_prompt(self.bench.backend, plan.prompt, plan.segments)
        backend = self.bench.backend
        pieces = [(r.piece, r.role, backend.is_special(r.id)) for r in records]
        emit(RawPrompt(plan.prompt, pieces))

    def cmd_entropy(self, arg: str, emit: Emit, should_stop) -> None:
        if not self.history:
            raise CommandError("no turn generated yet")
        last = self.history[-1]
        every = [t for g in self.history for t in g.tokens]
        emit(EntropyReport({"last turn (generated)": role_summaries(last.tokens),
                            "last turn (prompt)": role_summaries(last.prompt_tokens),
                            "session (generated)": role_summaries(every)}))

    def cmd_save(self, arg: str, emit: Emit, should_stop) -> None:
        from harness.store import save_json

        if not arg:
            raise CommandError("usage: /save FILE")
        save_json(arg, {"messages": self.conversation.to_dicts(), "settings": self.params.to_dict(),
                        "model": self.bench.backend.info.name, "template": self.bench.template.name})
        emit(Notice(f"saved {len(self.conversation)} messages to {arg}"))

    def cmd_load(self, arg: str, emit: Emit, should_stop) -> None:
        from harness.cli import read_messages

        if not arg:
            raise CommandError("usage: /load FILE")
        self.conversation = read_messages(arg)
        emit(Notice(f"loaded {len(self.conversation)} messages from {arg}"))

    def session_roles(self) -> dict[str, dict[str, Any]]:
        return role_summaries([t for g in self.history for t in g.tokens])


AS_IS_RAW = "as-is"

