"""Sequences decoded together: `harness run` of seeds over one prompt against llama.cpp's own
batched decode, measured in the same run.

Baseline: llama.cpp's batched decode driven through llama-cpp-python's low-level API on the same
loaded model, with the context settings harness's multi-sequence context uses (n_seq_max = B,
unified KV, n_batch 512, the same threads): the prompt decoded once on sequence 0, copied with
``llama_memory_seq_cp``, then one ``llama_decode`` of B tokens per step, each row's next token
its argmax (no statistics, no sampler). Its tokens/s counts the decode phase only.

Harness: ``run_cells`` (what ``harness run`` calls) of one conversation x 9 seeds x 96 tokens,
EOS banned so every cell makes 96 tokens, temperature 0.8 / top-k 40 / top-p 0.95 / min-p 0.05,
with ``batch: 8`` (cells 1-8 together, then cell 9) and ``batch: 9``, and ``batch: 1`` (serial) for
reference; generated tokens / (run seconds - model load seconds). Runs are interleaved after a
warm-up; figures are medians, ratios medians of per-repetition ratios.

Also: per-token statistics of a batched cell against the same cell run serially (max absolute
difference; identical tokens at temperature 0), and 4 candidates in one batch against 4 serial
generations (the work of `/retry 4` vs 4 x `/retry`).

    python bench/batch.py [--reps 3] [--threads 2] [--tokens 96] [--seeds 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import llama_cpp
import numpy as np

from harness.backends.llama_cpp import LlamaCppBackend
from harness.experiment.db import connect, open_run
from harness.experiment.run import run_cells
from harness.experiment.spec import expand, parse_experiment
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.models.registry import open_backend
from harness.prompt.conversation import Conversation
from harness.prompt.templates import load_template

PROMPT = "Tell me a long story about a dragon."
N_CTX = 2048
SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05}


def experiment_text(seeds: int, tokens: int, batch: int, threads: int) -> str:
    return (f"models: [smollm2]\neos: [ban]\nsampling: {{t0.8: {SAMPLING}}}\n"
            f"seeds: {list(range(1, seeds + 1))}\nmax_tokens: {tokens}\nthreads: {threads}\n"
            f"n_ctx: {N_CTX}\nbatch: {batch}\n"
            f"conversations: [{{name: dragon, messages: [{{role: user, content: '{PROMPT}'}}]}}]\n")


def harness_run(seeds: int, tokens: int, batch: int, threads: int) -> tuple[float, int]:
    """(generated tokens/s with the model load subtracted, tokens generated)."""
    exp = parse_experiment(experiment_text(seeds, tokens, batch, threads), where="bench.yaml", base=Path("."))
    cells = expand(exp)
    load = [0.0]

    def timed_open(model, n_threads):
        t = time.perf_counter()
        backend = open_backend(model.source, n_ctx=model.n_ctx, n_threads=n_threads)
        load[0] += time.perf_counter() - t
        return backend

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "b.sqlite")
        run_id, _ = open_run(conn, exp, cells)
        outcome = run_cells(exp, conn, run_id, cells, open_backend=timed_open)
        made = conn.execute("SELECT sum(generated_tokens) FROM turns").fetchone()[0]
        conn.close()
    assert outcome.ran == len(cells)
    return made / (outcome.seconds - load[0]), made


def llama_batched(backend: LlamaCppBackend, ids: list[int], n_seq: int, tokens: int, threads: int) -> float:
    """llama.cpp's own batched decode, no statistics: tokens/s of the decode phase."""
    lib = llama_cpp
    params = lib.llama_context_default_params()
    params.n_ctx = max(N_CTX, -(-(len(ids) + n_seq * tokens) // 256) * 256)
    params.n_batch = params.n_ubatch = 512
    params.n_seq_max = n_seq
    params.n_threads = params.n_threads_batch = threads
    params.swa_full = True
    params.kv_unified = True
    ctx = lib.llama_init_from_model(backend._model.model, params)
    mem = lib.llama_get_memory(ctx)
    batch = lib.llama_batch_init(512, 0, 1)
    n_vocab = backend.info.n_vocab

    def decode(items: list[tuple[int, int, int]], last_only: bool) -> None:
        batch.n_tokens = len(items)
        for i, (token, pos, seq) in enumerate(items):
            batch.token[i], batch.pos[i], batch.seq_id[i][0], batch.n_seq_id[i] = token, pos, seq, 1
            batch.logits[i] = not last_only
        batch.logits[len(items) - 1] = True
        assert lib.llama_decode(ctx, batch) == 0

    try:
        decode([(t, p, 0) for p, t in enumerate(ids)], True)
        first = int(np.argmax(np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))))
        for seq in range(1, n_seq):
            lib.llama_memory_seq_cp(mem, 0, seq, 0, -1)
        next_tokens = [first] * n_seq
        t0 = time.perf_counter()
        for step in range(tokens):
            decode([(next_tokens[s], len(ids) + step, s) for s in range(n_seq)], False)
            rows = np.ctypeslib.as_array(lib.llama_get_logits(ctx), shape=(n_seq, n_vocab))
            next_tokens = [int(t) for t in rows.argmax(axis=1)]
        return n_seq * tokens / (time.perf_counter() - t0)
    finally:
        lib.llama_batch_free(batch)
        lib.llama_free(ctx)


def compare_stats(bench: Workbench, seeds: int, tokens: int) -> list[str]:
    """Batched against serial generations of the same cells: identical texts, max differences."""
    plan = bench.plan(Conversation.of(("user", PROMPT)))
    lines = []
    for temperature in (0.0, 0.8):
        params = [SamplingParams(**{**SAMPLING, "temperature": temperature}, seed=s, max_tokens=tokens,
                                 eos=("stop", "ban", "continue")[s % 3] if temperature == 0 else "ban")
                  for s in range(1, seeds + 1)]
        serial = [bench.generate(plan, p) for p in params]
        together = bench.generate_many(plan, params)
        same = sum(a.text == b.text and [t.id for t in a.tokens] == [t.id for t in b.tokens]
                   for a, b in zip(serial, together, strict=True))
        worst = {k: 0.0 for k in ("entropy_bits", "surprisal_bits", "eot_prob", "varentropy_bits2",
                                  "sampling_entropy_bits")}
        compared = 0
        for a, b in zip(serial, together, strict=True):
            for x, y in zip(a.tokens, b.tokens, strict=False):
                if x.id != y.id:
                    break
                compared += 1
                for k in worst:
                    worst[k] = max(worst[k], abs(getattr(x.stats, k) - getattr(y.stats, k)))
            for x, y in zip(a.prompt_tokens[1:], b.prompt_tokens[1:], strict=True):
                worst["entropy_bits"] = max(worst["entropy_bits"], abs(x.stats.entropy_bits - y.stats.entropy_bits))
        diffs = ", ".join(f"{k} {v:.2g}" for k, v in worst.items())
        lines.append(f"  T={temperature}: identical token sequences {same}/{seeds}; "
                     f"{compared} tokens compared; max |batched - serial|: {diffs}")
    return lines


def retry_latency(bench: Workbench, n: int, tokens: int) -> tuple[float, float]:
    """(seconds for n candidates in one batch, seconds for n generated one after another)."""
    plan = bench.plan(Conversation.of(("user", PROMPT)))
    params = [SamplingParams(**SAMPLING, seed=s, max_tokens=tokens, eos="ban") for s in range(n)]
    t = time.perf_counter()
    bench.generate_many(plan, params)
    together = time.perf_counter() - t
    t = time.perf_counter()
    for p in params:
        bench.generate(plan, p)
    return together, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--seeds", type=int, default=9)
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    backend = open_backend("smollm2", n_ctx=N_CTX, n_threads=args.threads)
    assert isinstance(backend, LlamaCppBackend)
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template, model_name="smollm2"))
    ids = [r.id for r in bench.prompt_records(bench.plan(Conversation.of(("user", PROMPT))))]
    sizes = (1, 4, 8, 9, 16)
    rows: dict[str, list[float]] = {}
    harness_sets = {"harness run, batch 8": 8, "harness run, batch 9": 9, "harness run, batch 1 (serial)": 1}
    harness_run(2, 8, 2, args.threads)  # warm-up
    llama_batched(backend, ids, 8, 8, args.threads)
    for _ in range(args.reps):
        for b in sizes:
            rows.setdefault(f"llama.cpp batched decode B={b}", []).append(
                llama_batched(backend, ids, b, args.tokens, args.threads))
        for label, size in harness_sets.items():
            rate, _ = harness_run(args.seeds, args.tokens, size, args.threads)
            rows.setdefault(label, []).append(rate)
            base = rows["llama.cpp batched decode B=8"][-1]
            rows.setdefault(f"ratio {label} / llama.cpp B=8", []).append(rate / base)
    print(f"smollm2: 1 conversation x {args.seeds} seeds x {args.tokens} tokens, {args.threads} threads, "
          f"prompt {len(ids)} tokens, {args.reps} reps")
    print(f"{'':56s}{'median':>9s}{'min-max':>16s}")
    for label, values in rows.items():
        fmt = "{:.2f}" if label.startswith("ratio") else "{:.0f}"
        span = f"{fmt.format(min(values))}-{fmt.format(max(values))}"
        print(f"  {label + (' tok/s' if not label.startswith('ratio') else ''):54s}"
              f"{fmt.format(statistics.median(values)):>9s}{span:>16s}")
    print("per-token statistics, batched cell vs the same cell serially (9 cells, 96 tokens):")
    for line in compare_stats(bench, args.seeds, args.tokens):
        print(line)
    together, serial = zip(*(retry_latency(bench, 4, args.tokens) for _ in range(args.reps)), strict=True)
    t, s = statistics.median(together), statistics.median(serial)
    print(f"4 candidates of {args.tokens} tokens: one batch {t:.2f} s, 4 one after another {s:.2f} s "
          f"(ratio {t / s:.2f})")
    print(f"1-min load average, start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f}")
    backend.close()


if __name__ == "__main__":
    main()
