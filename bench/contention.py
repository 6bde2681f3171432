"""Decode speed when another process wants a core: llama.cpp threads = cores vs one fewer.

On a machine with few cores, a decode that uses every core can slow down far more than its share
when something else runs: llama.cpp's threads wait for each other at every operation, so one
descheduled thread stalls the rest. This measures it in one run, on the bundled SmolLM2:

- ``quiet``: nothing else running;
- ``busy``: N competing processes, each a Python busy loop (N = --busy, default 1).

For each, greedy decoding of --tokens tokens (one token per decode, full statistics, as the
REPL does) with threads = every core and with threads = one fewer; tokens per second on the wall
clock, medians of interleaved repetitions. Run it alone on the machine.

    python bench/contention.py [--tokens 64] [--reps 3] [--busy 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.generation.settings import EOS_BAN, SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.modes import REPLY, PromptPlan

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import workbench  # noqa: E402  (bench scripts share helpers by path)

PROMPT = "Tell me a long story about a dragon who learns to sing."


def bench_for(threads: int) -> tuple[Workbench, PromptPlan]:
    bench = workbench("smollm2", 2048, threads)
    return bench, bench.plan(Conversation.of(("user", PROMPT)), REPLY)


def tok_per_s(bench: Workbench, plan: PromptPlan, tokens: int) -> float:
    bench.evaluator.forget()
    params = SamplingParams(temperature=0.0, eos=EOS_BAN, max_tokens=tokens)
    t0 = time.perf_counter()
    gen = bench.generate(plan, params)
    return len(gen.tokens) / (time.perf_counter() - t0)


def busy(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1)
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    counts = [cores, cores - 1] if cores > 1 else [1]
    benches = {t: bench_for(t) for t in counts}
    results: dict[tuple[str, int], list[float]] = {}
    for load in ("quiet", "busy"):
        procs = busy(args.busy) if load == "busy" else []
        try:
            time.sleep(0.5 if procs else 0.0)
            for t in counts:  # warm-up
                tok_per_s(*benches[t], args.tokens)
            for _ in range(args.reps):
                for t in counts:
                    results.setdefault((load, t), []).append(tok_per_s(*benches[t], args.tokens))
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print(f"SmolLM2 greedy, {args.tokens} tokens x {args.reps} reps, {cores} cores, "
          f"busy = {args.busy} competing busy loop(s); tok/s median (min-max)")
    for load in ("quiet", "busy"):
        for t in counts:
            runs = results[(load, t)]
            print(f"  {load:5}  threads {t}: {statistics.median(runs):7.1f} "
                  f"({min(runs):.1f}-{max(runs):.1f})")
    if len(counts) == 2:
        for load in ("quiet", "busy"):
            a, b = (statistics.median(results[(load, t)]) for t in counts)
            print(f"  {load}: threads {counts[1]} / threads {counts[0]} = {b / a:.2f}")
        q, b = (statistics.median(results[(load, counts[0])]) for load in ("quiet", "busy"))
        print(f"  threads {counts[0]}: busy / quiet = {b / q:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
