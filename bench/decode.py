"""Harness's token loop and prompt scoring against llama-cpp-python on the same Llama object.

Both sides share one loaded model, one context, the same prompt token ids and the same sampling
settings (end-of-generation tokens banned on both sides so each run makes exactly N tokens).
Runs are interleaved (harness, baseline, harness, baseline, ...) after one warm-up of each, and
the figures are medians; ratios are medians of the per-repetition ratios. Without ``--model``
each known model runs in its own child process so its peak RSS is its own.

    python bench/decode.py [--model smollm2|gemma3-270m] [--tokens 200] [--reps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llama_cpp import Llama, StoppingCriteriaList

from harness.backends.llama_cpp import LlamaCppBackend
from harness.conversation import Conversation
from harness.evaluation import encode_prompt
from harness.models import open_backend
from harness.modes import PromptPlan
from harness.sampling import EOS_BAN, SamplingParams
from harness.templates import load_template
from harness.workbench import Workbench

TEMPLATES = {"smollm2": "gguf", "gemma3-270m": "raw"}  # model -> template spec
PROMPT = "Tell me a long story about a dragon."
SCORE_TARGET_TOKENS = 1500
N_CTX = 2048
TEMPERATURE, TOP_K, TOP_P, MIN_P = 0.8, 40, 0.95, 0.05


@dataclass(frozen=True)
class Rig:
    """One loaded model seen through both APIs."""

    name: str
    bench: Workbench
    llm: Llama
    plan: PromptPlan
    ids: list[int]  # the plan's prompt tokens, exactly as harness encodes them
    eog_ban: dict[int, float]


@dataclass(frozen=True)
class Run:
    """One timed generation: wall seconds end to end, decode-phase seconds, tokens made."""

    wall_s: float
    decode_s: float
    tokens: int


def open_rig(name: str, threads: int) -> Rig:
    backend = open_backend(name, n_ctx=N_CTX, n_threads=threads)
    assert isinstance(backend, LlamaCppBackend)
    template = load_template(TEMPLATES[name], embedded=backend.info.chat_template, model_name=name)
    bench = Workbench(backend, template)
    plan = bench.plan(Conversation.of(("user", PROMPT)), "reply")
    ids = [r.id for r in encode_prompt(backend, plan.prompt, plan.segments)]
    ban = {i: float("-inf") for i in backend.info.eog_ids}
    return Rig(name, bench, backend._llm, plan, ids, ban)


def clear_kv(rig: Rig) -> None:
    """Empty the shared KV cache and make both sides forget what they had evaluated."""
    rig.bench.evaluator.forget()
    rig.llm.reset()
    rig.llm._ctx.kv_cache_clear()


def run_harness(rig: Rig, n: int, seed: int) -> Run:
    params = SamplingParams(seed=seed, eos=EOS_BAN, max_tokens=n, temperature=TEMPERATURE,
                            top_k=TOP_K, top_p=TOP_P, min_p=MIN_P)
    clear_kv(rig)
    t0 = time.perf_counter()
    gen = rig.bench.generate(rig.plan, params)
    wall = time.perf_counter() - t0
    return Run(wall, gen.seconds, len(gen.tokens))


class FirstTokenClock:
    """A stopping criterion that never stops; notes when the first token was sampled."""

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        if self.at is None:
            self.at = time.perf_counter()
        return False


def run_baseline(rig: Rig, n: int, seed: int) -> Run:
    """create_completion on the same ids; decode phase = after the first sample (n - 1 tokens)."""
    clear_kv(rig)
    clock = FirstTokenClock()
    t0 = time.perf_counter()
    out = rig.llm.create_completion(
        rig.ids, max_tokens=n, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P, min_p=MIN_P,
        seed=seed, stop=[], logit_bias=rig.eog_ban, stopping_criteria=StoppingCriteriaList([clock]))
    end = time.perf_counter()
    tokens = int(out["usage"]["completion_tokens"])  # type: ignore[index]
    first = clock.at if clock.at is not None else end
    decode_s = (end - first) * tokens / max(tokens - 1, 1)  # scaled to n tokens
    return Run(end - t0, decode_s, tokens)


def interleave(reps: int, first: Callable[[int], Run], second: Callable[[int], Run]
               ) -> tuple[list[Run], list[Run]]:
    """One unrecorded warm-up of each, then first, second, first, second, ..."""
    first(0)
    second(0)
    a: list[Run] = []
    b: list[Run] = []
    for rep in range(1, reps + 1):
        a.append(first(rep))
        b.append(second(rep))
    return a, b


def long_conversation(rig: Rig, target: int) -> Conversation:
    """Alternating user/assistant turns until the rendered prompt reaches `target` tokens."""
    conv = Conversation()
    i = 0
    while True:
        role = "user" if i % 2 == 0 else "assistant"
        text = (f"Question {i}: what happened to the dragon on day {i}?" if role == "user" else
                f"On day {i} the dragon flew over {i * 7} hills, counted {i * 3} sheep, and "
                f"slept in a cave near the river, dreaming of gold and of the village of Ashford.")
        conv = conv.append(role, text)
        plan = rig.bench.plan(conv, "as-is")
        if len(encode_prompt(rig.bench.backend, plan.prompt, plan.segments)) >= target:
            return conv
        i += 1


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def score_bench(rig: Rig, reps: int) -> tuple[int, list[float], list[float]]:
    """(tokens, harness score seconds, llm.eval seconds) for a ~1,500-token conversation."""
    conv = long_conversation(rig, SCORE_TARGET_TOKENS)
    plan = rig.bench.plan(conv, "as-is")
    ids = [r.id for r in encode_prompt(rig.bench.backend, plan.prompt, plan.segments)]

    def harness(_: int) -> Run:
        clear_kv(rig)
        s = timed(lambda: rig.bench.score(conv))
        return Run(s, s, len(ids))

    def baseline(_: int) -> Run:
        clear_kv(rig)
        s = timed(lambda: rig.llm.eval(ids))
        return Run(s, s, len(ids))

    h, b = interleave(reps, harness, baseline)
    return len(ids), [r.wall_s for r in h], [r.wall_s for r in b]


def rates(runs: Sequence[Run], n: int, decode: bool) -> list[float]:
    return [n / (r.decode_s if decode else r.wall_s) for r in runs]


def median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def check_counts(label: str, runs: Sequence[Run], n: int) -> None:
    for i, r in enumerate(runs, 1):
        if r.tokens != n:
            print(f"  note: {label} rep {i} made {r.tokens} tokens, expected {n}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(title)
    for key, value in rows:
        print(f"  {key:<{width}}  {value:>10}")
    print()


def bench_model(name: str, n: int, reps: int, threads: int) -> None:
    rig = open_rig(name, threads)
    load_before = os.getloadavg()[0]
    h, b = interleave(reps, lambda s: run_harness(rig, n, s), lambda s: run_baseline(rig, n, s))
    check_counts("harness", h, n)
    check_counts("baseline", b, n)
    he, hd, be, bd = rates(h, n, False), rates(h, n, True), rates(b, n, False), rates(b, n, True)
    n_score, hs, bs = score_bench(rig, reps)
    med = statistics.median
    print_table(f"{name}: {n} tokens x {reps} reps, {threads} threads, prompt {len(rig.ids)} tokens, "
                f"vocab {rig.bench.backend.info.n_vocab}", [
        ("baseline create_completion tok/s (end to end)", f"{med(be):.1f}"),
        ("baseline create_completion tok/s (decode only)", f"{med(bd):.1f}"),
        ("harness generate tok/s (end to end)", f"{med(he):.1f}"),
        ("harness generate tok/s (decode only)", f"{med(hd):.1f}"),
        ("ratio harness/baseline (end to end)", f"{median_ratio(he, be):.2f}"),
        ("ratio harness/baseline (decode only)", f"{median_ratio(hd, bd):.2f}"),
        (f"harness score tok/s ({n_score} tokens)", f"{n_score / med(hs):.0f}"),
        (f"llm.eval tok/s ({n_score} tokens)", f"{n_score / med(bs):.0f}"),
        ("ratio score/eval (tok/s)", f"{median_ratio(bs, hs):.2f}"),
        ("peak RSS MB", f"{peak_rss_mb():.0f}"),
        ("1-min load average, start / end", f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"),
    ])
    rig.bench.close()


def profile_model(name: str, n: int, threads: int, lines: int = 25) -> None:
    """cProfile of one harness generate (after a warm-up), top lines by cumulative time."""
    rig = open_rig(name, threads)
    run_harness(rig, n, 0)
    profiler = cProfile.Profile()
    profiler.runcall(run_harness, rig, n, 1)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(lines)
    rig.bench.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TEMPLATES), help="default: each model in turn")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per generation")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of each side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="instead: cProfile one harness generate, top 25 by cumtime")
    return parser.parse_args(argv)


def each_model_in_a_child(args: argparse.Namespace) -> int:
    status = 0
    for name in TEMPLATES:
        cmd = [sys.executable, __file__, "--model", name, "--tokens", str(args.tokens),
               "--reps", str(args.reps), "--threads", str(args.threads)]
        if args.profile:
            cmd.append("--profile")
        status = max(status, subprocess.run(cmd, check=False).returncode)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model is None:
        return each_model_in_a_child(args)
    if args.profile:
        profile_model(args.model, args.tokens, args.threads)
    else:
        bench_model(args.model, args.tokens, args.reps, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
