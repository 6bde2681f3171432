"""Start-up: ``harness --help`` and the REPL ready on SmolLM2, against bare Python start-up.

Targets (issue 6): ``harness --help`` < 150 ms (nothing heavy imported) and the REPL ready on
SmolLM2 < 1.5 s. "Ready" = the ``user>`` prompt has appeared on a pseudo-terminal; the clock
starts just before the process is spawned. The first start on a new data directory also runs
the one-off sacrificial load of the model file in a child process (its verdict is then cached
per file), so the REPL is timed both cold (fresh HARNESS_HOME) and warm (same HARNESS_HOME).
Baselines in the same run: ``python -c pass`` and ``python -c "import llama_cpp"``.

    python bench/startup.py [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from ptychat import Chat  # noqa: E402  (the pty driver the kill tests use)


def wall(cmd: Sequence[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def repl_ready(home: str) -> float:
    os.environ["HARNESS_HOME"] = home
    os.environ["HARNESS_CACHE"] = os.path.join(home, "cache")  # the probe's verdicts live here
    t0 = time.perf_counter()
    chat = Chat("--model", "smollm2")
    try:
        chat.wait_for(b"user>", timeout=60)
        return time.perf_counter() - t0
    finally:
        chat.proc.kill()
        chat.finish()


def line(label: str, seconds: Sequence[float], target: float | None = None) -> str:
    med = statistics.median(seconds) * 1000
    tail = f"   target < {target * 1000:.0f} ms: {'met' if med < target * 1000 else 'MISSED'}" if target else ""
    return f"  {label:<44} {med:8.0f} ms  (min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f}){tail}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    py = sys.executable
    bare = [wall([py, "-c", "pass"]) for _ in range(args.reps)]
    llama = [wall([py, "-c", "import llama_cpp"]) for _ in range(args.reps)]
    helps = [wall([py, "-m", "harness", "--help"]) for _ in range(args.reps)]
    cold, warm = [], []
    for _ in range(max(2, args.reps // 2)):
        with tempfile.TemporaryDirectory() as home:
            cold.append(repl_ready(home))
            warm.append(repl_ready(home))
    print(f"start-up, {args.reps} reps, load {os.getloadavg()[0]:.2f}")
    print(line("python -c pass", bare))
    print(line("python -c 'import llama_cpp'", llama))
    print(line("harness --help", helps, 0.150))
    print(line("harness chat --model smollm2: user> (warm)", warm, 1.5))
    print(line("  same, first start on a new data dir (cold)", cold))
    print(f"  ratio --help / bare python: {statistics.median(helps) / statistics.median(bare):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
