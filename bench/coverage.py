"""How often a 95 % interval covers the true mean, per interval method and number of conversations.

Synthetic data shaped like an experiment's rows: G conversations, 5 turns (seeds) each of 10-120
tokens; a token's value is the conversation's effect + the turn's effect (sd 0.3) + token noise
(sd 1.0). Conversation effects are drawn normal (sd 1) or skewed (exponential, mean 0, sd 1).
The true condition mean is 0; each trial draws a new data set and asks each method for its
interval. Methods:

- ``bootstrap-turns``: percentile bootstrap over turns (treats seeds of one conversation as
  independent; harness.stats.bootstrap.cluster_mean_ci);
- ``bootstrap-conversations-turns``: percentile bootstrap over conversations, then turns within
  them (the summary's interval until issue 21; nested_mean_ci);
- ``t-conversations``: Student-t on conversation means, df = G - 1 (the summary's interval now;
  harness.stats.intervals.conversation_mean_ci).

Coverage within about ±1 point at 2,000 trials (binomial sd 0.5 %). Prints a Markdown table.

    python bench/coverage.py [--trials 2000] [--replicates 1000] [--seed 21]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.stats.bootstrap import cluster_mean_ci, nested_mean_ci  # noqa: E402
from harness.stats.intervals import Interval, conversation_mean_ci  # noqa: E402

CONVERSATIONS = (3, 5, 8, 16, 30)
SEEDS = 5
Data = tuple[list[int], list[float], list[float]]


def draw(rng: np.random.Generator, conversations: int, skewed: bool) -> Data:
    """(conversation, sum, count) per turn; the true mean is 0."""
    effects = rng.exponential(1.0, conversations) - 1.0 if skewed else rng.normal(0.0, 1.0, conversations)
    groups, sums, counts = [], [], []
    for g in range(conversations):
        for _ in range(SEEDS):
            n = int(rng.integers(10, 121))
            groups.append(g)
            sums.append(float((effects[g] + rng.normal(0.0, 0.3) + rng.normal(0.0, 1.0, n)).sum()))
            counts.append(float(n))
    return groups, sums, counts


def methods(replicates: int) -> dict[str, Callable[[Data, int], Interval | None]]:
    return {
        "bootstrap-turns": lambda d, i: cluster_mean_ci(d[1], d[2], replicates=replicates, seed=i),
        "bootstrap-conversations-turns": lambda d, i: nested_mean_ci(*d, replicates=replicates, seed=i),
        "t-conversations": lambda d, i: conversation_mean_ci(*d),
    }


def measure(trials: int, replicates: int, seed: int) -> dict[tuple[str, int, str], tuple[float, float]]:
    """(scenario, G, method) -> (coverage, mean width)."""
    out = {}
    for skewed in (False, True):
        scenario = "skewed" if skewed else "normal"
        for g in CONVERSATIONS:
            rng = np.random.default_rng(seed + g + 1000 * skewed)
            data = [draw(rng, g, skewed) for _ in range(trials)]
            for name, method in methods(replicates).items():
                hits, width = 0, 0.0
                for i, d in enumerate(data):
                    ci = method(d, i)
                    assert ci is not None and ci.low is not None and ci.high is not None
                    hits += ci.low <= 0.0 <= ci.high
                    width += ci.high - ci.low
                out[(scenario, g, name)] = (hits / trials, width / trials)
    return out


def table(results: dict[tuple[str, int, str], tuple[float, float]], replicates: int) -> str:
    names = list(methods(replicates))
    lines = ["| conversation effects | method | " + " | ".join(f"G = {g}" for g in CONVERSATIONS) + " |",
             "|---|---|" + "---|" * len(CONVERSATIONS)]
    for scenario in ("normal", "skewed"):
        for name in names:
            cells = [f"{results[(scenario, g, name)][0]:.1%} ({results[(scenario, g, name)][1]:.2f})"
                     for g in CONVERSATIONS]
            lines.append(f"| {scenario} | `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    started = time.perf_counter()
    results = measure(args.trials, args.replicates, args.seed)
    print(f"coverage of the true mean by 95% intervals (mean width in brackets); {args.trials} trials per cell, "
          f"{SEEDS} turns of 10-120 tokens per conversation, bootstrap {args.replicates} replicates")
    print()
    print(table(results, args.replicates))
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
