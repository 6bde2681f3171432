"""Token records and results: the shapes `generate`, `score`, logs and the REPL share."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.prompt.conversation import ATTRIBUTION_ROLES, Message
from harness.prompt.roundtrip import TurnMessage
from harness.stats.calibration import Calibration, calibration
from harness.stats.entropy import StepStats, summarize


@dataclass(frozen=True)
class TokenRecord:
    id: int
    piece: str
    role: str = "template"
    stats: StepStats | None = None  # None for the first prompt token (nothing predicts it)
    raw: bytes = b""  # the token's bytes; logged as hex when they are not valid UTF-8 alone

    @property
    def entropy_bits(self) -> float | None:
        """Entropy of the distribution that predicted this token (None: nothing predicted it)."""
        return self.stats.entropy_bits if self.stats else None

    @property
    def surprisal_bits(self) -> float | None:
        return self.stats.surprisal_bits if self.stats else None

    def with_role(self, role: str) -> TokenRecord:
        return replace(self, role=role)

    def to_dict(self, name_of: Callable[[int], str]) -> dict[str, Any]:
        s = self.stats
        out: dict[str, Any] = {"id": self.id, "piece": self.piece, "role": self.role}
        if self.raw and not _is_utf8(self.raw):
            out["bytes"] = self.raw.hex()
        return out | {
            "entropy_bits": _r(s.entropy_bits) if s else None,
            "surprisal_bits": _r(s.surprisal_bits) if s else None,
            "eot_prob": _r(s.eot_prob) if s else None,
            "varentropy_bits2": _r(s.varentropy_bits2) if s else None,
            "top": [[name_of(i), _r(p)] for i, p in zip(s.top_ids, s.top_probs, strict=True)] if s else [],
        } | _optional(s)


def _optional(s: StepStats | None) -> dict[str, Any]:
    """Fields only some tokens have: the sampled distribution's entropy (generated tokens) and
    the truncation of statistics computed from a top-k list (remote backends)."""
    out: dict[str, Any] = {}
    if s is not None and s.sampling_entropy_bits is not None:
        out["sampling_entropy_bits"] = _r(s.sampling_entropy_bits)
    if s is not None and s.truncated:
        out["truncated"] = True
        out["tail_mass"] = _r(s.tail_mass) if s.tail_mass is not None else None
        if s.entropy_bounds_bits is not None:
            out["entropy_bounds_bits"] = [_r(x) for x in s.entropy_bounds_bits]
        if s.eot_prob_bounds is not None:
            out["eot_prob_bounds"] = [_r(x) for x in s.eot_prob_bounds]
    return out


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _r(x: float) -> float | None:
    """Six significant digits; NaN (a probability a server did not report) and an unbounded
    upper bound (+inf: the vocabulary size unknown) become null."""
    return None if math.isnan(x) or math.isinf(x) else float(f"{x:.6g}")


def mean_bounds(bounds: Sequence[tuple[float, float] | None]) -> list[float | None] | None:
    """A mean's interval from per-token [lo, hi]: [mean lo, mean hi] over the tokens that have
    statistics (None when none is truncated: their means are exact)."""
    given = [b for b in bounds if b is not None]
    if not given:
        return None
    return [_r(math.fsum(b[0] for b in given) / len(given)), _r(math.fsum(b[1] for b in given) / len(given))]


def role_summaries(tokens: Sequence[TokenRecord]) -> dict[str, dict[str, Any]]:
    """Per-role token counts, mean entropy / surprisal (bits) and perplexity."""
    out = {}
    others = sorted({t.role for t in tokens} - set(ATTRIBUTION_ROLES))  # e.g. 'text' of score --text
    for role in (*ATTRIBUTION_ROLES, *others):
        mine = [t for t in tokens if t.role == role]
        if not mine:
            continue
        summary = summarize([t.stats.entropy_bits if t.stats else None for t in mine],
                            [t.stats.surprisal_bits if t.stats else None for t in mine])
        out[role] = summary.to_dict()
        scored = [t.stats for t in mine if t.stats is not None]
        if any(s.truncated for s in scored):  # exact tokens count as [h, h]
            out[role]["entropy_bounds_bits"] = mean_bounds(
                [s.entropy_bounds_bits or (s.entropy_bits, s.entropy_bits) for s in scored])
    return out


@dataclass
class Generation:
    """One generated turn: what was asked, what came, why it ended, every token's statistics."""

    prompt: str
    mode: str
    writer: str | None
    text: str = ""
    stop_reason: str = ""
    tokens: list[TokenRecord] = field(default_factory=list)
    prompt_tokens: list[TokenRecord] = field(default_factory=list)
    seconds: float = 0.0
    prompt_seconds: float = 0.0
    turn: TurnMessage | None = None  # the writer's turn as a message, and whether it round-trips

    @property
    def message(self) -> Message | None:
        """The generated turn as the message to store (what re-renders as the model wrote it)."""
        return self.turn.message if self.turn is not None else None

    @property
    def round_trip(self) -> bool | None:
        return self.turn.round_trip if self.turn is not None else None

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds if self.seconds > 0 else 0.0


def tokens_json(tokens: Sequence[TokenRecord], name_of: Callable[[int], str]) -> list[dict[str, Any]]:
    return [t.to_dict(name_of) for t in tokens]


def generation_json(gen: Generation, name_of: Callable[[int], str]) -> dict[str, Any]:
    """The `generate --json` contract, plus the prompt's own per-token statistics."""
    return {
        "prompt": gen.prompt, "text": gen.text, "stop_reason": gen.stop_reason,
        "mode": gen.mode,
        "tokens": tokens_json(gen.tokens, name_of),
        "roles": role_summaries(gen.tokens),
        "prompt_tokens": tokens_json(gen.prompt_tokens, name_of),
        "prompt_roles": role_summaries(gen.prompt_tokens),
        "timing": {"prompt_seconds": round(gen.prompt_seconds, 4), "seconds": round(gen.seconds, 4),
                   "tokens_per_second": round(gen.tokens_per_second, 2)},
    } | (gen.turn.to_dict() if gen.turn is not None else {})


def token_calibration(tokens: Sequence[TokenRecord]) -> Calibration:
    """Calibration of the distributions that predicted `tokens`: confidence = top-1
    probability, correct = the token that came was the top-1 (tokens without statistics skipped);
    intervals resample blocks of 16 consecutive tokens (one text has no larger unit)."""
    scored = [t for t in tokens if t.stats is not None and t.stats.top_ids]
    return calibration([t.stats.top_probs[0] for t in scored if t.stats],
                       [t.id == t.stats.top_ids[0] for t in scored if t.stats])


def score_json(prompt: str, tokens: Sequence[TokenRecord], name_of: Callable[[int], str]) -> dict[str, Any]:
    """The `score --json` contract: the first token has no statistics and is left out of means.
    `calibration` covers every scored token; each role in `roles` carries its own `ece`, with
    `ece_null` (a perfectly calibrated model's expected ECE at these confidences) and `ece_ci95`."""
    roles = role_summaries(tokens)
    for role, summary in roles.items():
        cal = token_calibration([t for t in tokens if t.role == role]).to_dict()
        summary |= {key: cal[key] for key in ("ece", "ece_null", "ece_ci95")}
    return {"prompt": prompt, "tokens": tokens_json(tokens, name_of), "roles": roles,
            "calibration": token_calibration(tokens).to_dict()}


def role_summary_lines(tokens: Sequence[TokenRecord]) -> list[str]:
    """One aligned line per role: tokens, mean entropy and surprisal (bits), perplexity."""
    def f(x: float | None) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    def bounds(s: dict[str, Any]) -> str:
        b = s.get("entropy_bounds_bits")
        return "" if not b else f" [{f(b[0]).strip()}, {'inf' if b[1] is None else f(b[1]).strip()}]"

    return [f"{role:10} {s['tokens']:6d} tokens  entropy {f(s['mean_entropy_bits'])}{bounds(s)} bits  "
            f"surprisal {f(s['mean_surprisal_bits'])} bits  perplexity {f(s['perplexity'])}"
            for role, s in role_summaries(tokens).items()]
