"""Every position's raw logits from a loaded backend, for tests that recompute statistics with numpy.

The rows come straight from llama.cpp through the backend's decode (no harness statistics code in
between), on the same decode path harness generated or scored on; on the default path a row does
not depend on how the tokens were batched, so one decode per chunk is the reference for both.
"""

from __future__ import annotations

import numpy as np


def reference_rows(backend, ids: list[int], one_by_one_from: int | None = None) -> np.ndarray:
    """(len(ids), n_vocab) float64 logits; tokens from `one_by_one_from` on decoded one per call."""
    split = len(ids) if one_by_one_from is None else one_by_one_from
    backend.truncate(0)
    rows: list[np.ndarray] = []
    step = backend.max_logit_rows
    for start in range(0, split, step):
        rows.extend(np.array(r, dtype=np.float64) for r in backend.decode(ids[start:min(start + step, split)],
                                                                          all_logits=True))
    for token in ids[split:]:
        rows.append(np.array(backend.decode([token], all_logits=False), dtype=np.float64))
    backend.truncate(0)
    return np.stack(rows)
