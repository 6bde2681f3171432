"""Does an engine give a row the same logits whatever the decode around it? Measured, not assumed.

Three comparisons, each between two ways of computing the same row (0.0 means bitwise equal):

- **batch vs rows**: a prompt decoded as one batch against its last rows decoded one at a time
  after the rest (what scoring vs generating, and a cold prompt vs a cached one, compare). The
  prompt is long enough to reach the kernels that switch with the decode's shape: 8 rows (tiled
  matmul), 64 query rows (tiled attention) and 512 cached cells (split-KV attention).
- **batch-mates**: one sequence's step decoded alone against the same step beside three others
  (what serial vs batched experiment cells compare).
- **serial vs sequences**: the backend's own context against a multi-sequence context (a cell run
  alone vs in a batch).

Used by the model probe at load (:mod:`harness.models.probe`) and by ``bench/invariance.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.backends.base import MultiSequenceBackend

PROBE_TOKENS = 300  # > 256: the cache view pads to 512 cells, where split-KV attention begins
SINGLE_ROWS = 8  # the last rows decoded one at a time
MATES = 4


@dataclass(frozen=True)
class Invariance:
    batch_vs_rows: float  # max |logit difference|
    first_position: int | None  # the first position that differed (batch vs rows)
    batch_mates: float
    serial_vs_sequences: float

    @property
    def invariant(self) -> bool:
        return self.batch_vs_rows == 0.0 and self.batch_mates == 0.0 and self.serial_vs_sequences == 0.0

    def describe(self) -> str:
        where = f" from position {self.first_position}" if self.first_position is not None else ""
        return (f"batch vs rows {self.batch_vs_rows:.3g}{where}, batch-mates {self.batch_mates:.3g}, "
                f"serial vs sequences {self.serial_vs_sequences:.3g} (max |logit difference|)")


def probe_ids(backend: MultiSequenceBackend, n: int = PROBE_TOKENS) -> list[int]:
    """`n` ordinary token ids of this vocabulary (a text repeated, tokenized)."""
    text = ("The keeper of the lighthouse counted the steps each evening, as his father had, "
            "and wrote the weather in a book that nobody read. ")
    ids = backend.tokenize(text * (1 + n // 20), special=False)
    if len(ids) < n:
        ids = (ids * (1 + n // max(len(ids), 1)))[:n]
    return ids[:n]


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def measure(backend: MultiSequenceBackend, ids: Sequence[int] | None = None) -> Invariance:
    """Run the three comparisons on `backend` (its cache is left empty)."""
    ids = list(ids) if ids is not None else probe_ids(backend)
    n = len(ids)
    split = n - SINGLE_ROWS
    backend.truncate(0)
    whole: list[np.ndarray] = []
    step = backend.max_logit_rows
    for start in range(0, n, step):
        whole.extend(row.copy() for row in backend.decode(ids[start:start + step], all_logits=True))
    backend.truncate(0)
    for start in range(0, split, step):
        backend.decode(ids[start:min(start + step, split)], all_logits=False)
    diffs = []
    for p in range(split, n):
        diffs.append(_diff(backend.decode([ids[p]], all_logits=False), whole[p]))
    first = next((split + i for i, d in enumerate(diffs) if d > 0.0), None)

    head = ids[:40]
    backend.truncate(0)
    backend.decode(head[:-1], all_logits=False)
    serial_row = backend.decode(head[-1:], all_logits=False).copy()
    backend.truncate(0)
    seqs = backend.sequences(MATES, len(head) + 8)
    alone, beside = [], []
    for mates in (1, MATES):
        seqs.truncate(0)
        seqs.decode(head[:-1], all_logits=False)
        seqs.fork(MATES)
        others = [ids[41 + k] for k in range(mates - 1)]
        rows = seqs.step(list(range(mates)), [head[-1], *others])
        (alone if mates == 1 else beside).append(rows[0].copy())
    seqs.truncate(0)
    return Invariance(max(diffs), first, _diff(alone[0], beside[0]), _diff(alone[0], serial_row))
