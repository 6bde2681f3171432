"""The per-row statistics kernel: its accuracy against float64 and its cost against float32 BLAS.

Rows shaped as real logits are (a few tokens on top, a long tail holding mass), at SmolLM2's
and Gemma-3's vocabulary sizes. Three kernels over the same rows:

- ``harness``: ``StatsWorkspace.rows`` (one kernel per row, numpy's pairwise float32 sums);
- ``blas32``: the same statistics with BLAS ``sdot`` float32 dot products (the kernel harness used
  before, reconstructed here as the baseline);
- ``float64``: everything in float64 (the reference for accuracy).

Prints the worst entropy error (bits) against float64 and microseconds per row, best of 5, and
the ratio harness / blas32 (the cost of the accuracy). Run it alone on the machine.

    python bench/stats_kernel.py [--rows 64]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from threadpoolctl import threadpool_limits

from harness.stats.entropy import StatsWorkspace, top_indices

LN2 = math.log(2.0)


def rows_like_logits(n: int, vocab: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.normal(-6.0, 2.0, (n, vocab)).astype(np.float32)
    rows[:, rng.integers(0, vocab, 5)] = 0.0
    return rows


def blas32(rows: np.ndarray) -> list[float]:
    """Entropy, varentropy and EOT with float32 sdot (the baseline)."""
    vocab = rows.shape[1]
    z = np.empty(vocab, dtype=np.float32)
    e = np.empty(vocab, dtype=np.float32)
    ones = np.ones(vocab, dtype=np.float32)
    out = []
    for row in rows:
        np.subtract(row, row.max(), out=z)
        np.exp(z, out=e)
        total = float(np.dot(e, ones))
        mean = float(np.dot(e, z)) / total
        float(e[[1, 2]].sum(dtype=np.float64))
        top_indices(z, 5)
        np.multiply(e, z, out=e)
        float(np.dot(e, z))
        out.append((math.log(total) - mean) / LN2)
    return out


def float64(rows: np.ndarray) -> list[float]:
    out = []
    for row in rows:
        z = row.astype(np.float64) - float(row.max())
        p = np.exp(z)
        p /= p.sum()
        logp = np.log(np.where(p > 0, p, 1.0))
        out.append(float(-(p * logp).sum()) / LN2)
    return out


def best_us(fn, rows: np.ndarray) -> float:
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        fn(rows)
        best = min(best, time.perf_counter() - t0)
    return best / rows.shape[0] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    args = parser.parse_args()
    threadpool_limits(limits=1, user_api="blas")  # as harness runs it
    for name, vocab in (("SmolLM2", 49152), ("Gemma-3", 262144)):
        rows = rows_like_logits(args.rows, vocab, vocab)
        ws = StatsWorkspace(vocab, [1, 2])
        following = [3] * args.rows
        ref = float64(rows)
        ours = [s.entropy_bits for s in ws.rows(rows, following)]
        base = blas32(rows)
        err_ours = max(abs(a - b) for a, b in zip(ours, ref, strict=True))
        err_base = max(abs(a - b) for a, b in zip(base, ref, strict=True))
        t_ours = best_us(lambda r, ws=ws, following=following: ws.rows(r, following), rows)
        t_base = best_us(blas32, rows)
        print(f"{name} ({vocab} tokens, {args.rows} rows): harness {t_ours:.0f} us/row, error {err_ours:.1e} bits; "
              f"blas32 {t_base:.0f} us/row, error {err_base:.1e} bits; cost ratio {t_ours / t_base:.2f}")


if __name__ == "__main__":
    main()
