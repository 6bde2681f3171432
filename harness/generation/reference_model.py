"""Teacher-forcing the same text through a second (reference) model: `score --reference R`.

Same vocabulary (the reference tokenizes the text into the same ids): both models decode the
ids in lockstep, chunk by chunk, and every position gets the reference's surprisal, KL(model ||
reference) over the full distributions and the token's rank under the reference. Always, also
across vocabularies: both models' surprisals are spread over the bytes of the text, so per-role
bits per byte compare honestly (a 49k and a 262k vocabulary cut the same bytes differently).
Intervals resample the turns of the text (maximal runs of one role), never single tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.backends.base import Backend
from harness.errors import CommandError
from harness.generation.evaluation import PromptEvaluator, workspace_for
from harness.generation.records import TokenRecord
from harness.prompt.conversation import ATTRIBUTION_ROLES, TEMPLATE
from harness.prompt.segments import Segment
from harness.stats.bootstrap import cluster_mean_ci
from harness.stats.model_comparison import (
    RefStep,
    bits_on_bytes,
    byte_spans,
    compare_row,
    role_runs,
)

Encode = Callable[[Backend], list[TokenRecord]]


@dataclass(frozen=True)
class ReferenceScore:
    name: str
    same_vocabulary: bool
    steps: list[RefStep | None]  # per model token (same vocabulary), else empty
    byte_roles: list[str]  # per byte of the text
    model_bits: np.ndarray  # per byte: the model's surprisal share (NaN: not scored)
    reference_bits: np.ndarray


def byte_roles(text: str, segments: Sequence[Segment], default: str = TEMPLATE) -> list[str]:
    """The role of every UTF-8 byte of `text`: its segment's role, else `default`."""
    char_role = [default] * len(text)
    for seg in segments:
        char_role[seg.start:seg.end] = [seg.role] * (seg.end - seg.start)
    return [role for ch, role in zip(text, char_role, strict=True) for _ in ch.encode("utf-8")]


def compare_same_vocabulary(model: Backend, reference: Backend, ids: Sequence[int]) -> list[RefStep | None]:
    """Decode `ids` in both models from an empty cache, chunk by chunk; None for the first."""
    model.truncate(0)
    reference.truncate(0)
    step = min(model.max_logit_rows, reference.max_logit_rows)
    out: list[RefStep | None] = [None]
    for start in range(0, len(ids), step):
        chunk = list(ids[start:start + step])
        rows_m = model.decode(chunk, all_logits=True)  # a view; stays valid: the other backend decodes next
        rows_r = reference.decode(chunk, all_logits=True)
        for k in range(len(chunk)):
            if start + k + 1 < len(ids):
                out.append(compare_row(rows_m[k], rows_r[k], ids[start + k + 1]))
    model.truncate(0)
    reference.truncate(0)
    return out


def score_reference(model: Backend, records: Sequence[TokenRecord], reference: Backend, *,
                    text: str, segments: Sequence[Segment], encode: Encode,
                    default_role: str = TEMPLATE) -> ReferenceScore:
    """Compare `records` (the model's scored tokens of `text`) with the reference on the same text.

    `encode(backend)` gives a backend's token records of the text (the model's own encoding,
    applied to the reference). The model's KV cache is left empty."""
    ref_records = encode(reference)
    ids = [r.id for r in records]
    same = reference.info.n_vocab == model.info.n_vocab and [r.id for r in ref_records] == ids
    if same:
        steps = compare_same_vocabulary(model, reference, ids)
        ref_scored = [TokenRecord(r.id, r.piece, r.role, raw=r.raw) for r in records]
        ref_bits_src = [s.ref_surprisal_bits if s else None for s in steps]
    else:
        steps = []
        reference.truncate(0)
        stats, _ = PromptEvaluator(reference, workspace_for(reference)).evaluate([r.id for r in ref_records])
        reference.truncate(0)
        ref_scored = list(ref_records)
        ref_bits_src = [s.surprisal_bits if s else None for s in stats]
    data = text.encode("utf-8")
    m_spans = byte_spans([r.raw for r in records], data)
    r_spans = byte_spans([r.raw for r in ref_scored], data)
    if m_spans is None or r_spans is None:
        raise CommandError("the tokens do not spell the text, so bits per byte cannot be aligned",
                           hint="score with --literal-content, or a text without control-token strings")
    model_bits = bits_on_bytes(m_spans, [r.surprisal_bits for r in records], len(data))
    ref_bits = bits_on_bytes(r_spans, ref_bits_src, len(data))
    return ReferenceScore(reference.info.name, same, steps, byte_roles(text, segments, default_role),
                          model_bits, ref_bits)


def _r(x: float) -> float | None:
    """Six significant digits; NaN becomes null."""
    return None if math.isnan(x) else float(f"{x:.6g}")


def token_fields(steps: Sequence[RefStep | None]) -> list[dict[str, Any]]:
    """The per-token keys `score --json` adds under a same-vocabulary reference."""
    return [{"ref_surprisal_bits": _r(s.ref_surprisal_bits), "kl_bits": _r(s.kl_bits), "ref_rank": s.rank,
             "ref_rank_of_model_top1": s.top1_rank}
            if s else {"ref_surprisal_bits": None, "kl_bits": None, "ref_rank": None,
                       "ref_rank_of_model_top1": None} for s in steps]


def _ci(sums: Sequence[float], counts: Sequence[float]) -> list[float] | None:
    interval = cluster_mean_ci(sums, counts)
    return [_r(interval.low), _r(interval.high)] if interval else None


def reference_json(score: ReferenceScore, records: Sequence[TokenRecord]) -> dict[str, Any]:
    """`{"model", "same_vocabulary", "roles": {ROLE: ...}}`: per role bits per byte of both
    models over the bytes both scored and their difference (model - reference) with an interval
    over turns; under one vocabulary also mean reference surprisal, mean KL (with interval) and
    the fraction of tokens the reference ranks first."""
    both = ~np.isnan(score.model_bits) & ~np.isnan(score.reference_bits)
    roles_b = np.array(score.byte_roles)
    present = [r for r in (*ATTRIBUTION_ROLES, *sorted(set(score.byte_roles) - set(ATTRIBUTION_ROLES)))
               if r in set(score.byte_roles) or any(t.role == r for t in records)]
    out: dict[str, dict[str, Any]] = {}
    for role in present:
        entry: dict[str, Any] = {}
        mask = both & (roles_b == role)
        n = int(mask.sum())
        if n:
            diff = score.model_bits - score.reference_bits
            runs = [(s, e) for r, s, e in role_runs(score.byte_roles) if r == role]
            entry |= {"bytes": n,
                      "model_bits_per_byte": _r(float(score.model_bits[mask].sum()) / n),
                      "reference_bits_per_byte": _r(float(score.reference_bits[mask].sum()) / n),
                      "difference_bits_per_byte": _r(float(diff[mask].sum()) / n),
                      "difference_ci95": _ci([float(diff[s:e][both[s:e]].sum()) for s, e in runs],
                                             [int(both[s:e].sum()) for s, e in runs])}
        if score.same_vocabulary:
            entry |= _token_entry(role, score.steps, records)
        if entry:
            out[role] = entry
    return {"model": score.name, "same_vocabulary": score.same_vocabulary, "roles": out}


def _token_entry(role: str, steps: Sequence[RefStep | None], records: Sequence[TokenRecord]) -> dict[str, Any]:
    mine = [s for s, t in zip(steps, records, strict=True) if s is not None and t.role == role]
    if not mine:
        return {}
    runs = [(s, e) for r, s, e in role_runs([t.role for t in records]) if r == role]
    kl_sums = [sum(st.kl_bits for st in steps[s:e] if st is not None) for s, e in runs]
    counts = [sum(st is not None for st in steps[s:e]) for s, e in runs]
    return {"tokens": len(mine),
            "mean_ref_surprisal_bits": _r(sum(s.ref_surprisal_bits for s in mine) / len(mine)),
            "mean_kl_bits": _r(sum(s.kl_bits for s in mine) / len(mine)),
            "kl_ci95": _ci(kl_sums, counts),
            "ref_rank1_fraction": _r(sum(s.rank == 1 for s in mine) / len(mine)),
            "top1_agreement": _r(sum(s.top1_rank == 1 for s in mine) / len(mine))}


def reference_lines(data: dict[str, Any]) -> list[str]:
    """The plain-text view of :func:`reference_json`: one line per role."""
    def f(x: float | None) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    def ci(pair: list[float] | None) -> str:
        return "[   -  ,   -  ]" if pair is None else f"[{pair[0]:6.3f}, {pair[1]:6.3f}]"

    lines = [f"reference {data['model']} ({'same' if data['same_vocabulary'] else 'different'} vocabulary); "
             "bits per byte over the bytes both models scored, difference = model - reference"]
    for role, e in data["roles"].items():
        line = (f"{role:10} bits/byte model {f(e.get('model_bits_per_byte'))}  reference "
                f"{f(e.get('reference_bits_per_byte'))}  difference {f(e.get('difference_bits_per_byte'))} "
                f"{ci(e.get('difference_ci95'))}")
        if "mean_kl_bits" in e:
            line += (f"  KL {f(e['mean_kl_bits'])} bits {ci(e['kl_ci95'])}  top-1 agreement "
                     f"{f(e['top1_agreement'])}")
        lines.append(line)
    return lines

