"""The token loop: evaluate the prompt, then sample token by token under an EOS policy.

Per step: read the logits view, compute the model's statistics (temperature 1, full vocabulary),
apply biases / EOS ban / repetition penalty, sample, decide whether to stop (under ``stop``:
an end-of-generation token, or the writer's close marker written as text; a stop string, max
tokens, an interrupt), then evaluate the token. Roles of the
generated tokens come from parsing the whole generated text with the template's turn markers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.backends.base import Backend
from harness.errors import CommandError
from harness.evaluation import PromptEvaluator, encode_prompt
from harness.generated_roles import attribute_tokens, turn_parser
from harness.markers import TurnMarkers
from harness.modes import PromptPlan
from harness.records import Generation, TokenRecord
from harness.sampling import EOS_BAN, EOS_STOP, SamplingParams, adjustments, sample_with_entropy
from harness.stop_text import GrowingText, turn_end_marker
from harness.turns import TurnParser

EOS = "eos"
STOP_STRING = "stop_string"
END_OF_TURN = "end_of_turn"  # the writer's close marker appeared as text (eos stop)
MAX_TOKENS = "max_tokens"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StreamEvent:
    """One generated token as it arrives: its record and the text it adds."""

    token: TokenRecord
    text: str
    role: str


def resolve_bias(backend: Backend, bias: Mapping[str, float]) -> dict[int, float]:
    """`token-or-id -> value` to `id -> value`; a text must be exactly one token."""
    out: dict[int, float] = {}
    for key, value in bias.items():
        token = int(key) if str(key).lstrip("-").isdigit() else backend.token_id(str(key))
        if token is None or not 0 <= token < backend.info.n_vocab:
            raise CommandError(f"logit bias: '{key}' is not a single token id or token text",
                               hint="use an id, or a text that tokenizes to exactly one token")
        out[token] = float(value)
    return out


def _turn_parser(backend: Backend, markers: TurnMarkers) -> TurnParser:
    return turn_parser(markers, (backend.piece(i).decode("utf-8", "replace") for i in backend.info.eog_ids))


def attribute_generated(backend: Backend, markers: TurnMarkers, plan: PromptPlan,
                        tokens: list[TokenRecord]) -> list[TokenRecord]:
    """Label generated tokens with roles by parsing the open turn plus what was generated."""
    return attribute_tokens(_turn_parser(backend, markers), plan, tokens)


def _replay_forced(backend: Backend, forced: Sequence[int], stats: Sequence, result: Generation,
                   text: GrowingText, parser: TurnParser, plan: PromptPlan,
                   on_token: Callable[[StreamEvent], None] | None, eos_policy: str) -> None:
    """Record and stream forced tokens as if generated, adding their text (an end-of-turn
    token under the `stop` policy ends the turn and adds no text; stops are not looked for:
    the user chose these tokens)."""
    eog = backend.info.eog_ids if eos_policy == EOS_STOP else frozenset()
    for token, step in zip(forced, stats, strict=True):
        raw = backend.piece(token)
        record = TokenRecord(token, raw.decode("utf-8", "replace"), "", step, raw=raw)
        result.tokens.append(record)
        before = text.text
        added = "" if token in eog else text.add(raw, look=False)[0]
        if on_token is not None:
            on_token(StreamEvent(record, added, parser.role_at_end(plan.opened + before, plan.writer)))


def generate(backend: Backend, evaluator: PromptEvaluator, plan: PromptPlan, markers: TurnMarkers,
             params: SamplingParams, *, on_token: Callable[[StreamEvent], None] | None = None,
             should_stop: Callable[[], bool] | None = None, literal_content: bool = False,
             forced: Sequence[int] = ()) -> Generation:
    """Generate after `plan`. `forced` tokens (a branch: the turn so far plus a chosen
    alternative) are evaluated with the prompt, recorded and streamed as generated tokens, and
    sampling continues after them for up to `max_tokens` more."""
    params.validate()
    result = Generation(plan.prompt, plan.mode, plan.writer)
    t0 = time.perf_counter()
    prompt_records = encode_prompt(backend, plan.prompt, plan.segments, literal_content=literal_content)
    ids = [r.id for r in prompt_records]
    evaluator.check_fits(len(ids) + len(forced), 1)
    stats, logits = evaluator.evaluate(ids + list(forced))
    result.prompt_tokens = [replace(r, stats=s) for r, s in zip(prompt_records, stats[: len(ids)], strict=True)]
    t1 = time.perf_counter()
    result.prompt_seconds = t1 - t0

    bias = resolve_bias(backend, params.logit_bias)
    eog = backend.info.eog_ids
    banned = sorted(eog) if params.eos == EOS_BAN else []
    rng = np.random.default_rng(params.seed)
    ws = evaluator.workspace
    parser = _turn_parser(backend, markers)
    turn_end = turn_end_marker(markers, plan.writer) if params.eos == EOS_STOP else None
    text = GrowingText((*params.stop, *([turn_end] if turn_end else [])))
    budget = min(params.max_tokens, backend.info.n_ctx - len(ids) - len(forced))
    recent = list((ids + list(forced))[-params.repeat_last_n:]) if params.repeat_last_n > 0 else []
    _replay_forced(backend, forced, stats[len(ids):], result, text, parser, plan, on_token, params.eos)
    stop_reason = MAX_TOKENS
    pending: tuple[int, object] | None = None
    if forced and forced[-1] in eog and params.eos == EOS_STOP:
        budget, stop_reason = 0, EOS
    for _ in range(budget):
        if pending is not None:
            token_id, token_stats = pending
            logits = backend.decode([token_id], all_logits=False)
            evaluator.accept(token_id, token_stats)  # type: ignore[arg-type]
        step = ws.step(logits, None)
        adjust = adjustments(logits, bias, banned, recent, params.repeat_penalty)
        token, drawn_bits = sample_with_entropy(logits, params, rng, adjust, ws.raw_top)
        step = replace(step, surprisal_bits=ws.surprisal_after_step(token), sampling_entropy_bits=drawn_bits)
        raw = backend.piece(token)
        record = TokenRecord(token, raw.decode("utf-8", "replace"), "", step, raw=raw)
        result.tokens.append(record)
        if token in eog and params.eos == EOS_STOP:
            stop_reason = EOS
            break
        before = text.text
        added, hit = text.add(raw)
        if on_token is not None:
            role = parser.role_at_end(plan.opened + before, plan.writer)
            on_token(StreamEvent(record, added, role))
        if hit is not None:
            stop_reason = END_OF_TURN if hit == turn_end and hit not in params.stop else STOP_STRING
            break
        if should_stop is not None and should_stop():
            stop_reason = INTERRUPTED
            break
        if params.repeat_last_n > 0:
            recent.append(token)
            del recent[: -params.repeat_last_n]
        pending = (token, step)
    result.text = text.text if stop_reason in (STOP_STRING, END_OF_TURN) else text.finish()
    result.stop_reason = stop_reason
    result.tokens = attribute_generated(backend, markers, plan, result.tokens)
    result.seconds = time.perf_counter() - t1
    return result
