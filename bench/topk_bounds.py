"""How wide the entropy bounds of a top-k list are, and which point estimate sits nearest the truth:
what chooses the default ``n_probs`` (the smallest k whose mean bound width is at most 0.5 bits on
every bundled model).

Each bundled model answers a few user messages through its chat template (greedy and sampled at
temperature 0.8); each generated position's full next-token distribution is then read back from
llama.cpp (one all-logits decode of prompt + reply). For every k, the top-k of that distribution
gives harness's bounds (harness.stats.topk) and point estimate, compared with the full-vocabulary
entropy: mean width, mean |estimate - truth| and |lower bound - truth|, where the mean truth sits
between the mean bounds (0: at lo, 1: at hi), and whether every position's truth lies inside.

    python bench/topk_bounds.py [--tokens 64] [--ks 10,20,50,100,200,500,1000] [--models smollm2,gemma3-270m]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench, choose_template
from harness.models.registry import open_backend
from harness.prompt.conversation import Conversation
from harness.stats.topk import entropy_bounds_bits, entropy_estimate_bits

MESSAGES = ("Say hi.", "Tell me a long story about a dragon.", "What is the capital of France?",
            "Write a haiku about the sea.", "Explain photosynthesis to a child.",
            "List three uses of a paperclip.")
MODELS = (("smollm2", None), ("gemma3-270m", "gemma"))


def distributions(model: str, template: str | None, tokens: int) -> list[np.ndarray]:
    """The full next-token distribution at every generated position (float64, sums to 1)."""
    backend = open_backend(model, n_ctx=1024, n_threads=2)
    bench = Workbench(backend, choose_template(template, backend.info.chat_template, model))
    out = []
    for i, text in enumerate(MESSAGES):
        for temperature in (0.0, 0.8):
            plan = bench.plan(Conversation.of(("user", text)))
            gen = bench.generate(plan, SamplingParams(temperature=temperature, seed=i, max_tokens=tokens))
            prompt = [r.id for r in bench.prompt_records(plan)]
            ids = prompt + [t.id for t in gen.tokens]
            backend.truncate(0)
            rows = np.array(backend.decode(ids[:-1], all_logits=True), dtype=np.float64)[len(prompt) - 1:]
            z = rows - rows.max(axis=1, keepdims=True)
            p = np.exp(z)
            out.extend(p / p.sum(axis=1, keepdims=True))
    backend.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--ks", default="10,20,50,100,200,500,1000")
    ap.add_argument("--models", default=",".join(m for m, _ in MODELS))
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    chosen = []
    for model, template in (m for m in MODELS if m[0] in args.models.split(",")):
        rows = distributions(model, template, args.tokens)
        n_vocab = rows[0].shape[0]
        truth = [float(-(p[p > 0] * np.log2(p[p > 0])).sum()) for p in rows]
        print(f"\n{model}: {len(rows)} generated positions, vocabulary {n_vocab}, "
              f"mean full-vocabulary entropy {np.mean(truth):.3f} bits")
        print(f"{'k':>6} {'mean lo':>8} {'mean hi':>8} {'width':>7} {'max width':>9} {'inside':>7} "
              f"{'|est-H|':>8} {'|lo-H|':>8} {'H at':>5}")
        best = None
        for k in ks:
            bounds, est = [], []
            for p in rows:
                top = np.sort(p)[::-1][:k].tolist()
                bounds.append(entropy_bounds_bits(top, n_vocab))
                est.append(entropy_estimate_bits(top, n_vocab))
            lo = np.array([b[0] for b in bounds])
            hi = np.array([b[1] for b in bounds])
            h = np.array(truth)
            width = hi - lo
            inside = int(np.sum((lo <= h + 1e-9) & (h <= hi + 1e-9)))
            print(f"{k:6d} {lo.mean():8.3f} {hi.mean():8.3f} {width.mean():7.3f} {width.max():9.3f} "
                  f"{inside:>3}/{len(h):<3} {np.mean(np.abs(np.array(est) - h)):8.4f} "
                  f"{np.mean(np.abs(lo - h)):8.4f} {(h.mean() - lo.mean()) / width.mean():5.2f}")
            if best is None and width.mean() <= 0.5:
                best = k
        print(f"smallest k with mean width <= 0.5 bits: {best}")
        chosen.append(best if best is not None else math.inf)
    print(f"\ndefault n_probs (the largest of those): {max(chosen)}")


if __name__ == "__main__":
    main()
