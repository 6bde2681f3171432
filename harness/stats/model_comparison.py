"""Comparing a model with a reference model on the same text (numpy; units in every name).

Same vocabulary: per position, the reference's surprisal of the token that came, the
Kullback-Leibler divergence KL(model || reference) = sum_v p_m(v) log2(p_m(v) / p_r(v)) over the
full distributions, in bits, the token's rank under the reference (1 = its top choice) and the
rank under the reference of the model's own top choice (1 everywhere when they agree).

Different vocabularies: token surprisals are not comparable (a 262k vocabulary spends fewer,
costlier tokens on the same text), but bits per byte are. Each token's surprisal is spread
evenly over the bytes it spells, so both models' bits land on the same bytes of the text; a
role's bits per byte is the sum over its bytes scored by both models / the number of those bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LN2 = math.log(2.0)


def log_softmax_nats(logits: np.ndarray) -> np.ndarray:
    """log p of softmax(logits), float64 (1-D)."""
    z = logits.astype(np.float64) - float(np.max(logits))
    return z - math.log(float(np.exp(z).sum()))


@dataclass(frozen=True)
class RefStep:
    ref_surprisal_bits: float
    kl_bits: float  # KL(model || reference)
    rank: int  # of the token that came, under the reference; 1 = the reference's top choice
    top1_rank: int  # of the model's own top choice, under the reference (1: they agree)


def compare_row(model_logits: np.ndarray, ref_logits: np.ndarray, token: int) -> RefStep:
    """One position: both models' logits over one vocabulary and the token that came."""
    lm, lr = log_softmax_nats(model_logits), log_softmax_nats(ref_logits)
    kl_nats = float(np.dot(np.exp(lm), lm - lr))
    return RefStep(-lr[token] / LN2, max(kl_nats, 0.0) / LN2, _rank(ref_logits, token),
                   _rank(ref_logits, int(np.argmax(model_logits))))


def _rank(logits: np.ndarray, token: int) -> int:
    """1 + the number of tokens strictly more probable than `token` (ties share the better rank)."""
    return 1 + int(np.count_nonzero(logits > logits[token]))


def byte_spans(pieces: Sequence[bytes], text: bytes) -> list[tuple[int, int]] | None:
    """(start, length) in `text` of each piece, pieces laid end to end; a leading piece the
    text does not start with (an added BOS) spans no bytes. None when the pieces do not spell
    the text."""
    skip = 1 if pieces and b"".join(pieces) != text and b"".join(pieces[1:]) == text else 0
    if b"".join(pieces[skip:]) != text:
        return None
    spans, pos = [(0, 0)] * skip, 0
    for piece in pieces[skip:]:
        spans.append((pos, len(piece)))
        pos += len(piece)
    return spans


def bits_on_bytes(spans: Sequence[tuple[int, int]], surprisals: Sequence[float | None],
                  n_bytes: int) -> np.ndarray:
    """Per byte of the text: its share of the surprisal of the token spelling it (bits); NaN
    where that token was not scored (the first token) or spells no bytes."""
    out = np.full(n_bytes, np.nan)
    for (start, length), bits in zip(spans, surprisals, strict=True):
        if length and bits is not None and not math.isnan(bits):
            out[start:start + length] = bits / length
    return out


def role_runs(roles: Sequence[str]) -> list[tuple[str, int, int]]:
    """Maximal runs of one role: (role, start, end) — the turns of a rendered conversation,
    the clusters its intervals resample."""
    runs: list[tuple[str, int, int]] = []
    start = 0
    for i in range(1, len(roles) + 1):
        if i == len(roles) or roles[i] != roles[start]:
            runs.append((roles[start], start, i))
            start = i
    return runs
