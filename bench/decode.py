"""Harness's token loop and prompt scoring against llama-cpp-python's Llama on the same model.

Both sides load the same file with the same context size and threads, and get the same prompt
token ids and the same sampling settings. harness decodes on its batch-invariant path; ``Llama``
on llama.cpp's defaults (bench/invariance.py compares the two paths within harness); the sampling
settings (end-of-generation tokens banned on both sides so each run makes exactly N tokens).
Runs are interleaved (harness, baseline, harness, baseline, ...) after one warm-up of each, and
the figures are medians; ratios are medians of the per-repetition ratios. Without ``--model``
each known model runs in its own child process so its peak RSS is its own.

Scoring is timed three ways on the same ids: ``Workbench.score`` (all logits plus per-token
statistics), ``Llama.eval`` (last row's logits only) and a bare all-logits decode in harness's
batch size, which separates what scoring must pay llama.cpp from what harness adds in Python.

    python bench/decode.py [--model smollm2|gemma3-270m] [--tokens 200] [--reps 5] [--threads 2]
                           [--score-only] [--cpu-time]
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
from typing import Any, TypeVar

from llama_cpp import Llama, StoppingCriteriaList

from harness.backends.llama_cpp import LlamaCppBackend
from harness.generation.evaluation import encode_prompt
from harness.generation.settings import EOS_BAN, SamplingParams
from harness.generation.workbench import Workbench
from harness.models.registry import open_backend
from harness.prompt.conversation import Conversation
from harness.prompt.modes import AS_IS, REPLY, PromptPlan
from harness.prompt.templates import load_template

TEMPLATES = {"smollm2": "gguf", "gemma3-270m": "raw"}  # model -> template spec
PROMPT = "Tell me a long story about a dragon."
SCORE_TARGET_TOKENS = 1500
N_CTX = 2048
TEMPERATURE, TOP_K, TOP_P, MIN_P = 0.8, 40, 0.95, 0.05

T = TypeVar("T")


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


def workbench(name: str, n_ctx: int, threads: int) -> Workbench:
    """Harness alone on a bundled model, with the template this bench uses for it."""
    backend = open_backend(name, n_ctx=n_ctx, n_threads=threads)
    assert isinstance(backend, LlamaCppBackend)
    template = load_template(TEMPLATES[name], embedded=backend.info.chat_template, model_name=name)
    return Workbench(backend, template)


def open_rig(name: str, threads: int) -> Rig:
    bench = workbench(name, N_CTX, threads)
    backend = bench.engine
    plan = bench.plan(Conversation.of(("user", PROMPT)), REPLY)
    ids = [r.id for r in encode_prompt(backend, plan.prompt, plan.segments)]
    ban = {i: float("-inf") for i in backend.info.eog_ids}
    llm = Llama(backend.info.path, n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads, verbose=False)
    return Rig(name, bench, llm, plan, ids, ban)


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


def interleave(reps: int, sides: Sequence[Callable[[int], T]]) -> list[list[T]]:
    """One unrecorded warm-up of each side, then side 1, side 2, ..., side 1, side 2, ..."""
    for side in sides:
        side(0)
    results: list[list[T]] = [[] for _ in sides]
    for rep in range(1, reps + 1):
        for runs, side in zip(results, sides, strict=True):
            runs.append(side(rep))
    return results


def long_conversation(rig: Rig, target: int) -> Conversation:
    """Alternating user/assistant turns until the rendered prompt reaches `target` tokens."""
    conv = Conversation()
    i = 0
    while len(conversation_ids(rig, conv)) < target:
        if i % 2 == 0:
            conv = conv.append("user", f"Question {i}: what happened to the dragon on day {i}?")
        else:
            conv = conv.append("assistant", (
                f"On day {i} the dragon flew over {i * 7} hills, counted {i * 3} sheep, and slept "
                f"in a cave near the river, dreaming of gold and of the village of Ashford."))
        i += 1
    return conv


def conversation_ids(rig: Rig, conv: Conversation) -> list[int]:
    """The token ids bench.score evaluates for `conv` (empty for an empty conversation)."""
    if not len(conv):
        return []
    plan = rig.bench.plan(conv, AS_IS)
    return [r.id for r in encode_prompt(rig.bench.engine, plan.prompt, plan.segments)]


def timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    t0 = clock()
    fn()
    return clock() - t0


def decode_all_logits(rig: Rig, ids: Sequence[int]) -> None:
    """What scoring cannot avoid: every row's logits, in the batches harness uses, no stats."""
    backend = rig.bench.engine
    step = backend.max_logit_rows
    for start in range(0, len(ids), step):
        backend.decode(ids[start:start + step], all_logits=True)


def score_bench(rig: Rig, reps: int, clock: Callable[[], float] = time.perf_counter) -> tuple[int, list[list[float]]]:
    """(tokens, seconds per rep of: bench.score, llm.eval, all-logits decode) on ~1,500 tokens,
    by `clock` (time.process_time with one thread: CPU seconds, which waits for a core on a
    shared machine do not inflate)."""
    conv = long_conversation(rig, SCORE_TARGET_TOKENS)
    ids = conversation_ids(rig, conv)

    def side(fn: Callable[[], object]) -> Callable[[int], float]:
        def run(_: int) -> float:
            clear_kv(rig)
            return timed(fn, clock)
        return run

    sides = [side(lambda: rig.bench.score(conv)), side(lambda: rig.llm.eval(ids)),
             side(lambda: decode_all_logits(rig, ids))]
    return len(ids), interleave(reps, sides)


def rates(runs: Sequence[Run], n: int, *, decode: bool) -> list[float]:
    return [n / (r.decode_s if decode else r.wall_s) for r in runs]


def ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(num, den, strict=True)]


def check_counts(label: str, runs: Sequence[Run], n: int) -> None:
    for i, r in enumerate(runs, 1):
        if r.tokens != n:
            print(f"  note: {label} rep {i} made {r.tokens} tokens, expected {n}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


Row = tuple[str, str, str]


def row(label: str, values: Sequence[float], fmt: str) -> Row:
    """(label, median, min-max) of one measurement across repetitions."""
    spread = f"{min(values):{fmt}}-{max(values):{fmt}}"
    return label, f"{statistics.median(values):{fmt}}", spread


def print_table(title: str, rows: Sequence[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(title)
    print(f"  {'':<{width}}  {'median':>10}  {'min-max':>13}")
    for label, median, spread in rows:
        print(f"  {label:<{width}}  {median:>10}  {spread:>13}")
    print()


def decode_rows(rig: Rig, n: int, reps: int) -> list[Row]:
    harness, baseline = interleave(reps, [lambda s: run_harness(rig, n, s),
                                          lambda s: run_baseline(rig, n, s)])
    check_counts("harness", harness, n)
    check_counts("baseline", baseline, n)
    he, hd = rates(harness, n, decode=False), rates(harness, n, decode=True)
    be, bd = rates(baseline, n, decode=False), rates(baseline, n, decode=True)
    return [
        row("baseline create_completion tok/s, end to end", be, ".1f"),
        row("baseline create_completion tok/s, decode only", bd, ".1f"),
        row("harness generate tok/s, end to end", he, ".1f"),
        row("harness generate tok/s, decode only", hd, ".1f"),
        row("ratio harness/baseline, end to end", ratios(he, be), ".2f"),
        row("ratio harness/baseline, decode only", ratios(hd, bd), ".2f"),
    ]


def score_rows(rig: Rig, reps: int, cpu: bool = False) -> list[Row]:
    n, (score_s, eval_s, logits_s) = score_bench(rig, reps, time.process_time if cpu else time.perf_counter)
    unit = "tok per CPU s" if cpu else "tok/s"
    return [
        row(f"harness score {unit} ({n} tokens)", [n / s for s in score_s], ".0f"),
        row(f"llm.eval {unit} ({n} tokens)", [n / s for s in eval_s], ".0f"),
        row(f"all-logits decode {unit} (harness batches)", [n / s for s in logits_s], ".0f"),
        row("ratio score/eval (tok/s)", ratios(eval_s, score_s), ".2f"),
        row("ratio score/all-logits decode (tok/s)", ratios(logits_s, score_s), ".2f"),
    ]


def bench_model(name: str, n: int, reps: int, threads: int, score_only: bool = False, cpu: bool = False) -> None:
    rig = open_rig(name, threads)
    info = rig.bench.info
    load_start = os.getloadavg()[0]
    rows = ([] if score_only else decode_rows(rig, n, reps)) + score_rows(rig, reps, cpu)
    rows.append(("peak RSS MB", f"{peak_rss_mb():.0f}", ""))
    rows.append(("1-min load average, start / end", f"{load_start:.2f} / {os.getloadavg()[0]:.2f}", ""))
    print_table(f"{name}: {n} tokens x {reps} reps, {threads} threads, prompt {len(rig.ids)} tokens, "
                f"vocab {info.n_vocab}", rows)
    rig.bench.close()


def print_profile(title: str, fn: Callable[[], object], lines: int) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    print(f"===== {title}")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(lines)


def profile_model(name: str, n: int, threads: int, lines: int = 25) -> None:
    """cProfile one harness generate and one score (each after a warm-up), by cumulative time."""
    rig = open_rig(name, threads)
    run_harness(rig, n, 0)
    print_profile(f"{name}: harness generate, {n} tokens", lambda: run_harness(rig, n, 1), lines)
    conv = long_conversation(rig, SCORE_TARGET_TOKENS)
    clear_kv(rig)
    rig.bench.score(conv)
    clear_kv(rig)
    print_profile(f"{name}: harness score", lambda: rig.bench.score(conv), lines)
    rig.bench.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TEMPLATES), help="default: each model in turn")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per generation")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions of each side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true",
                        help="instead: cProfile one harness generate and one score, top 25 by cumtime")
    parser.add_argument("--score-only", action="store_true", help="time scoring only (no generation)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time scoring in CPU seconds (process_time; use with --threads 1 on a shared machine)")
    return parser.parse_args(argv)


def each_model_in_a_child(args: argparse.Namespace) -> int:
    status = 0
    for name in TEMPLATES:
        cmd = [sys.executable, __file__, "--model", name, "--tokens", str(args.tokens),
               "--reps", str(args.reps), "--threads", str(args.threads)]
        cmd += ["--profile"] * args.profile + ["--score-only"] * args.score_only + ["--cpu-time"] * args.cpu_time
        status = max(status, subprocess.run(cmd, check=False).returncode)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.model is None:
        return each_model_in_a_child(args)
    if args.profile:
        profile_model(args.model, args.tokens, args.threads)
    else:
        if args.cpu_time and args.threads != 1:
            print("note: --cpu-time with more than one thread counts every thread's CPU time", file=sys.stderr)
        bench_model(args.model, args.tokens, args.reps, args.threads, args.score_only, args.cpu_time)
    return 0


if __name__ == "__main__":
    sys.exit(main())
