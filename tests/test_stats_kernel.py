"""The compiled per-row statistics kernel (harness/stats/_rowstats.c) against float64 numpy.

Rows are shaped like real logits (a few tokens far ahead, a long tail that holds mass) at
vocabulary sizes with and without a partial last block; the model tests (test_one_number.py)
check real rows of both bundled models end to end.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from harness.backends.llama_build import probe
from harness.stats import _rowstats
from harness.stats.entropy import BLOCK, StatsWorkspace, top_indices

LN2 = math.log(2.0)
KERNEL = Path(__file__).resolve().parent.parent / "harness" / "stats" / "_rowstats.c"


def logits_like(n: int, seed: int, spread: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    row = rng.normal(-8.0, spread, n).astype(np.float32)
    row[rng.integers(0, n, min(5, n))] += 12.0
    return row


def reference(row: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(entropy bits, varentropy bits^2, probabilities) in float64."""
    z = row.astype(np.float64) - float(row.max())
    e = np.exp(z)
    p = e / e.sum()
    h = -float(p @ np.where(p > 0, np.log(p), 0.0))
    var = float(p @ (np.log(np.where(p > 0, p, 1.0)) + h) ** 2)
    return h / LN2, var / LN2**2, p


def run(row: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray, np.ndarray]:
    z = np.empty(row.size, np.float32)
    block_max = np.empty(-(-row.size // BLOCK), np.float32)
    return _rowstats.row(row, z, block_max), z, block_max


@pytest.mark.parametrize("n", [1, 15, 16, 127, 128, 129, 1000, 49152, 151936, 262144])
def test_sums_match_float64_and_scratch_is_exact(n):
    row = logits_like(n, n)
    (m, total, sum_ez, sum_ez2), z, block_max = run(row)
    assert m == row.max()
    assert np.array_equal(z, row - row.max())  # the same float32 subtraction numpy does
    padded = np.full(len(block_max) * BLOCK, -np.inf, np.float32)
    padded[:n] = row
    assert np.array_equal(block_max, padded.reshape(-1, BLOCK).max(axis=1))
    h, var, _ = reference(row)
    mean = sum_ez / total
    assert (math.log(total) - mean) / LN2 == pytest.approx(h, abs=2e-7)
    assert (sum_ez2 / total - mean * mean) / LN2**2 == pytest.approx(var, rel=1e-6, abs=1e-9)


def test_exp_is_within_a_few_ulp_over_the_whole_range():
    worst = 0.0
    for v in np.linspace(-87.0, -1e-3, 4001, dtype=np.float32):
        (_, _, sum_ez, _), _, _ = run(np.array([0.0, v], np.float32))
        e = sum_ez / float(v)  # sum_ez is e * v rounded once to float32
        worst = max(worst, abs(e / math.exp(float(v)) - 1.0))
    assert worst < 1e-6


def test_far_below_the_maximum_counts_as_nothing_and_nan_is_not_hidden():
    row = np.full(1000, -np.inf, np.float32)
    row[3] = 2.0
    row[4] = 2.0 - 1e4
    (m, total, sum_ez, _), z, _ = run(row)
    assert m == 2.0 and total == pytest.approx(1.0, abs=1e-30) and sum_ez == pytest.approx(0.0, abs=1e-30)
    row[7] = np.nan
    (_, _, sum_ez, _), _, _ = run(row)
    assert math.isnan(sum_ez)


def test_bad_buffers_are_refused_not_read():
    z = np.empty(10, np.float32)
    block_max = np.empty(1, np.float32)
    with pytest.raises(TypeError):
        _rowstats.row(np.zeros(10, np.float64), z, block_max)
    with pytest.raises((TypeError, ValueError, BufferError)):
        _rowstats.row(np.zeros(20, np.float32)[::2], z, block_max)
    with pytest.raises(ValueError):
        _rowstats.row(np.zeros(11, np.float32), z, block_max)  # z too short
    with pytest.raises(ValueError):
        _rowstats.row(np.zeros(10, np.float32), z, np.empty(0, np.float32))
    with pytest.raises((TypeError, ValueError, BufferError)):
        _rowstats.row(np.zeros(10, np.float32), np.zeros(10, np.float32)[::1].copy().view(np.int32), block_max)
    with pytest.raises(ValueError):
        _rowstats.top(z, block_max, 0)
    with pytest.raises(ValueError):
        _rowstats.top(z, block_max, _rowstats.TOP_MAX + 1)


@pytest.mark.parametrize("seed", range(6))
def test_top_through_block_maxima_is_the_stable_sort(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 70000))
    row = logits_like(n, seed, spread=float(rng.choice([0.5, 3.0, 20.0])))
    # ties, also across blocks and at the k-th place
    row[rng.integers(0, n, 40)] = row.max()
    row[rng.integers(0, n, 40)] = np.partition(row, -50)[-50]
    _, z, block_max = run(row)
    for k in (1, 5, 40, 64, 65, 100):
        expected = np.argsort(-z, kind="stable")[:k]
        assert list(top_indices(z, k, block_max)) == list(expected), k
        assert list(top_indices(z, k)) == list(expected), k


def test_rows_give_the_same_bits_on_any_thread_and_alone():
    rows = np.stack([logits_like(49152, s) for s in range(9)])
    following = [int(i) * 7 for i in range(9)]
    alone = StatsWorkspace(49152, [0, 2], threads=1)
    shared = StatsWorkspace(49152, [0, 2], threads=2)
    one = [alone.step(row, tok) for row, tok in zip(rows, following, strict=True)]
    assert shared.rows(rows, following) == one
    assert alone.rows(rows, following) == one
    block = shared.block(rows)
    assert [s.entropy_bits for s in block] == [s.entropy_bits for s in one]
    assert [shared.block_surprisal(i, t) for i, t in enumerate(following)] == [s.surprisal_bits for s in one]


def _compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc")


def test_every_vector_width_computes_the_same_bits(tmp_path):
    """The kernel built for one width at a time (no run-time choice) gives identical numbers."""
    cc = _compiler()
    if cc is None or not KERNEL.exists():
        pytest.fail("no C compiler: setup needs one to build llama.cpp and this kernel")
    usable = {ext.name for ext in probe().usable()}  # advertised and granted by the OS
    widths = {"sse2": [], "avx2": ["-mavx2"], "avx512": ["-mavx512f"]}
    runnable = {"sse2": True, "avx2": "AVX2" in usable, "avx512": "AVX512" in usable}
    rows = [logits_like(n, n) for n in (129, 49152, 262144)]
    results = {}
    for name, extra in widths.items():
        if not runnable[name]:
            continue
        out = tmp_path / name / ("_rowstats" + sysconfig.get_config_var("EXT_SUFFIX"))
        out.parent.mkdir()
        subprocess.run([cc, "-shared", "-fPIC", "-O3", "-ffp-contract=off", "-fno-trapping-math",
                        "-DHARNESS_ONE_VARIANT", *extra, f"-I{sysconfig.get_paths()['include']}",
                        str(KERNEL), "-o", str(out)], check=True, capture_output=True)
        spec = importlib.util.spec_from_file_location("_rowstats", out)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        got = []
        for row in rows:
            z = np.empty(row.size, np.float32)
            block_max = np.empty(-(-row.size // BLOCK), np.float32)
            got.append((module.row(row, z, block_max), module.top(z, block_max, 5)))
        results[name] = got
    installed = []
    for row in rows:
        sums, z, block_max = run(row)
        installed.append((sums, _rowstats.top(z, block_max, 5)))
    assert len(results) >= 2 or not runnable["avx2"]
    for name, got in results.items():
        assert got == installed, name
