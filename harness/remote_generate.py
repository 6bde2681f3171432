"""The generation loop over a server: stream its tokens, apply the EOS policy, keep statistics.

The server samples; harness turns each reported token into a TokenRecord whose statistics come
from the top-k list (:mod:`harness.topk`, marked truncated). Stop strings and interruption are
checked here, between streamed tokens (closing the stream ends the request). EOS policies:

- ``stop``: the server stops at an end-of-generation token; that token is recorded last (its
  statistics come with the server's final message, or from one extra 1-token request with the
  end-of-generation ids banned, whose top-k is the distribution the EOS was drawn from).
- ``continue``: emulated, since servers have no "go on past EOS" (llama-server's ``ignore_eos``
  bans the tokens): after an EOS, a new completion resumes with the EOS appended.
- ``ban``: the end-of-generation ids get a -inf logit bias (OpenAI-compatible: -100).

Prompt tokens get no statistics: llama-server does not score prompts and llama-cpp-python's
``echo`` logprobs are misaligned by one position, so ``prompt_tokens`` is left empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from harness.errors import CommandError
from harness.generate import END_OF_TURN, EOS, INTERRUPTED, MAX_TOKENS, STOP_STRING, StreamEvent
from harness.generated_roles import attribute_tokens, turn_parser
from harness.markers import TurnMarkers
from harness.modes import PromptPlan
from harness.records import Generation, TokenRecord
from harness.remote import CompletionRequest, RemoteEngine, RemoteFinish, RemoteStep, TopEntry
from harness.sampling import EOS_BAN, EOS_CONTINUE, EOS_STOP, SamplingParams
from harness.stop_text import GrowingText, turn_end_marker
from harness.topk import truncated_stats
from harness.turns import TurnParser

DEFAULT_N_PROBS = 10


def resolve_remote_bias(engine: RemoteEngine, bias: Mapping[str, float]) -> dict[int, float]:
    """`token-or-id -> value` to `id -> value`; a text must be exactly one token."""
    out: dict[int, float] = {}
    for key, value in bias.items():
        if str(key).lstrip("-").isdigit():
            out[int(key)] = float(value)
            continue
        ids = engine.tokenize(str(key))
        if len(ids) != 1:
            raise CommandError(f"logit bias: '{key}' is not a single token on the server",
                               hint="use an id, or a text that tokenizes to exactly one token")
        out[ids[0]] = float(value)
    return out


def final_ids(engine: RemoteEngine, step: RemoteStep) -> RemoteStep:
    """`step` with the provisional ids of a stream replaced by the engine's final ones."""
    fix = engine.canonical
    return RemoteStep(fix(step.id), step.raw, step.prob,
                      tuple(TopEntry(fix(e.id), e.text, e.prob) for e in step.top))


def eos_step_from_probe(probe: RemoteStep, eog: Iterable[int], eos_id: int | None) -> RemoteStep:
    """The end-of-generation token of a distribution sampled with the EOS banned: the most likely
    end-of-generation id in its top-k; else its one empty-text entry (llama-cpp-python names
    control tokens ""); else the EOS id with an unknown probability."""
    eog = set(eog)
    known = [e for e in probe.top if e.id in eog]
    empty = [e for e in probe.top if e.text == ""]
    fallback = eos_id if eos_id is not None else min(eog, default=-1)
    if known:
        best = max(known, key=lambda e: e.prob)
        return RemoteStep(best.id, best.text.encode("utf-8"), best.prob, probe.top)
    if len(empty) == 1 and fallback >= 0:
        top = tuple(TopEntry(fallback, e.text, e.prob) if e.text == "" else e for e in probe.top)
        return RemoteStep(fallback, b"", empty[0].prob, top)
    return RemoteStep(fallback, b"", None, probe.top)


class RemoteGeneration:
    """One generated turn over a server (state of the loop; :func:`generate_remote` runs it)."""

    def __init__(self, engine: RemoteEngine, plan: PromptPlan, markers: TurnMarkers,
                 params: SamplingParams, eog_ids: frozenset[int], n_probs: int):
        self.engine, self.plan, self.params, self.eog = engine, plan, params, eog_ids
        self.n_probs = n_probs
        self.parser: TurnParser = turn_parser(
            markers, (engine.piece(i).decode("utf-8", "replace") for i in sorted(eog_ids)))
        self.bias = resolve_remote_bias(engine, params.logit_bias)
        self.result = Generation(plan.prompt, plan.mode, plan.writer)
        self.turn_end = turn_end_marker(markers, plan.writer) if params.eos == EOS_STOP else None
        self.text = GrowingText((*params.stop, *([self.turn_end] if self.turn_end else [])))
        self.steps: list[RemoteStep] = []
        self.ids: list[int] = []
        self.raw = b""

    def request(self, max_tokens: int, *, ban_eos: bool = False) -> CompletionRequest:
        p = self.params
        ban = tuple(sorted(self.eog)) if (p.eos == EOS_BAN or ban_eos) else ()
        return CompletionRequest(
            self.plan.prompt, max_tokens, p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty,
            p.repeat_last_n, p.seed, self.n_probs, tuple(self.ids), self.raw.decode("utf-8", "replace"),
            self.bias, ban)

    def record(self, step: RemoteStep) -> TokenRecord:
        stats = truncated_stats([(e.id, e.prob) for e in step.top], step.prob, self.eog)
        return TokenRecord(step.id, step.raw.decode("utf-8", "replace"), "", stats, raw=step.raw)

    def settle(self) -> None:
        """Give every recorded step its final ids (after the streams have ended)."""
        self.steps = [final_ids(self.engine, s) for s in self.steps]
        self.ids = [s.id for s in self.steps]

    def accept(self, step: RemoteStep, on_token: Callable[[StreamEvent], None] | None) -> str | None:
        """Record a token and add it to the text; the stop reason if it ends the turn."""
        record = self.record(step)
        self.steps.append(step)
        self.ids.append(step.id)
        self.raw += step.raw
        before = self.text.text
        added, hit = self.text.add(step.raw)
        if on_token is not None:
            on_token(StreamEvent(record, added, self.parser.role_at_end(self.plan.opened + before,
                                                                        self.plan.writer)))
        if hit is None:
            return None
        return END_OF_TURN if hit == self.turn_end and hit not in self.params.stop else STOP_STRING

    def run_once(self, budget: int, on_token, should_stop) -> tuple[str | None, RemoteFinish | None]:
        """One server completion; (stop reason if decided, the server's finish)."""
        stream = self.engine.complete(self.request(budget))
        try:
            for item in stream:
                if isinstance(item, RemoteFinish):
                    return None, item
                stopped = self.accept(item, on_token)
                if stopped:
                    return stopped, None
                if should_stop is not None and should_stop():
                    return INTERRUPTED, None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return None, RemoteFinish("length")

    def eos_step(self, finish: RemoteFinish) -> RemoteStep:
        if finish.eos_step is not None:
            return finish.eos_step
        items = list(self.engine.complete(self.request(1, ban_eos=True)))
        probe = next((s for s in items if isinstance(s, RemoteStep)), None)
        if probe is None:
            return RemoteStep(self.engine.info.eos_id or -1, b"", None, ())
        return eos_step_from_probe(final_ids(self.engine, probe), self.eog, self.engine.info.eos_id)


def generate_remote(engine: RemoteEngine, plan: PromptPlan, markers: TurnMarkers,
                    params: SamplingParams, *, eog_ids: frozenset[int], n_probs: int = DEFAULT_N_PROBS,
                    on_token: Callable[[StreamEvent], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Generation:
    params.validate()
    t0 = time.perf_counter()
    run = RemoteGeneration(engine, plan, markers, params, eog_ids, n_probs)
    reason: str | None = None
    eos: RemoteStep | None = None
    while reason is None and len(run.ids) < params.max_tokens:
        reason, finish = run.run_once(params.max_tokens - len(run.ids), on_token, should_stop)
        run.settle()
        if reason is not None or finish is None or finish.reason != "eos":
            break
        step = run.eos_step(finish)
        if not step.raw and step.id >= 0:
            step = RemoteStep(step.id, engine.piece(step.id), step.prob, step.top)
        if params.eos != EOS_CONTINUE:
            eos, reason = step, EOS
            break
        reason = run.accept(step, on_token)
    run.settle()
    result = run.result
    steps = run.steps + ([eos] if eos is not None else [])  # the EOS is last, not in the text
    result.tokens = attribute_tokens(run.parser, plan, [run.record(s) for s in steps])
    result.stop_reason = reason or MAX_TOKENS
    result.text = run.text.text if reason in (STOP_STRING, END_OF_TURN) else run.text.finish()
    result.seconds = time.perf_counter() - t0
    return result
