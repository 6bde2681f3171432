"""Prompt scoring of a ~6,000-token conversation against llama-cpp-python, and its peak memory.

Issue 6's target: ``harness score`` at >= 80 % of a plain ``Llama.eval`` of the same tokens, and
peak RSS <= model file + KV cache + 512 MB on Gemma-3 at n_ctx 8192 (an all-logits buffer for the
whole context would need n_ctx x n_vocab x 4 bytes = 8.6 GB there).

Timing (one process, one ``Llama``, interleaved after a warm-up, medians): ``Workbench.score``
(render, tokenize, every row's logits in batches, full-vocabulary statistics per row) against

- ``Llama.eval(ids)``: llama-cpp-python's plain evaluation, which asks llama.cpp for the *last*
  row's logits only: the requested baseline, not like for like;
- an all-logits decode of the same ids in harness's batches with nothing computed on the
  logits: what any per-token scorer must pay llama.cpp (the 262k-wide output layer on every row).

Memory: each model is scored once more in a fresh child process that does nothing else, and the
child reports its RSS after load (model + context, KV cache included) and its peak.

    python bench/score.py [--model smollm2|gemma3-270m] [--tokens 6000] [--reps 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decode import (  # noqa: E402  (bench scripts share helpers by path)
    TEMPLATES,
    Rig,
    clear_kv,
    conversation_ids,
    decode_all_logits,
    interleave,
    long_conversation,
    print_table,
    ratios,
    row,
    timed,
    workbench,
)

N_CTX = 8192


def open_rig(name: str, threads: int) -> Rig:
    import decode

    decode.N_CTX = N_CTX
    return decode.open_rig(name, threads)


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc (a forked child's ru_maxrss keeps
    its parent's peak across exec; VmHWM belongs to the address space made at exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def timing(name: str, target: int, reps: int, threads: int) -> None:
    rig = open_rig(name, threads)
    conv = long_conversation(rig, target)
    ids = conversation_ids(rig, conv)
    n = len(ids)

    def side(fn):
        def run(_: int) -> float:
            clear_kv(rig)
            return timed(fn)
        return run

    load = os.getloadavg()[0]
    score_s, eval_s, logits_s = interleave(reps, [side(lambda: rig.bench.score(conv)),
                                                  side(lambda: rig.llm.eval(ids)),
                                                  side(lambda: decode_all_logits(rig, ids))])
    print_table(f"{name}: score {n} tokens x {reps} reps, n_ctx {N_CTX}, {threads} threads, "
                f"vocab {rig.bench.info.n_vocab}, load {load:.2f} -> {os.getloadavg()[0]:.2f}", [
        row("harness score tok/s", [n / s for s in score_s], ".0f"),
        row("Llama.eval tok/s (last row's logits)", [n / s for s in eval_s], ".0f"),
        row("all-logits decode tok/s (no statistics)", [n / s for s in logits_s], ".0f"),
        row("ratio score / Llama.eval", ratios(eval_s, score_s), ".2f"),
        row("ratio score / all-logits decode", ratios(logits_s, score_s), ".2f"),
    ])


def harness_only(name: str, threads: int) -> SimpleNamespace:
    """What long_conversation and conversation_ids need of a Rig (its Workbench), without the
    llama-cpp-python ``Llama`` a Rig also loads: that second context is not harness's memory."""
    return SimpleNamespace(bench=workbench(name, N_CTX, threads))


def memory_child(name: str, target: int, threads: int) -> None:
    """Runs in a fresh process: load harness alone, score once, print JSON with the RSS figures."""
    rig = harness_only(name, threads)
    conv = long_conversation(rig, target)
    n = len(conversation_ids(rig, conv))
    rig.bench.evaluator.forget()
    loaded = status_mb("VmRSS")
    rig.bench.score(conv)
    peak = status_mb("VmHWM")
    info = rig.bench.info
    kv = _kv_mb(rig)
    print(json.dumps({"tokens": n, "rss_after_load_mb": loaded, "peak_mb": peak,
                      "file_mb": Path(info.path).stat().st_size / 2**20, "kv_mb": kv,
                      "naive_all_logits_mb": N_CTX * info.n_vocab * 4 / 2**20}))


def _kv_mb(rig: SimpleNamespace) -> float:
    """KV cache bytes as llama.cpp reports them (state size of a full context minus logits)."""
    from harness.models.gguf import read_gguf_info

    meta = read_gguf_info(rig.bench.info.path).scalars
    arch = meta["general.architecture"]
    layers = int(meta[f"{arch}.block_count"])
    heads_kv = int(meta.get(f"{arch}.attention.head_count_kv", meta[f"{arch}.attention.head_count"]))
    key = int(meta.get(f"{arch}.attention.key_length", 0)) or int(meta[f"{arch}.embedding_length"]) // int(
        meta[f"{arch}.attention.head_count"])
    value = int(meta.get(f"{arch}.attention.value_length", key))
    return layers * N_CTX * heads_kv * (key + value) * 2 / 2**20  # f16 K and V, every layer full


def memory(name: str, target: int, threads: int) -> None:
    cmd = [sys.executable, __file__, "--model", name, "--tokens", str(target), "--threads",
           str(threads), "--memory-child"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = json.loads(out.strip().splitlines()[-1])
    budget = m["file_mb"] + m["kv_mb"] + 512
    print(f"{name}: peak RSS scoring {m['tokens']} tokens at n_ctx {N_CTX}: {m['peak_mb']:.0f} MB "
          f"(after load {m['rss_after_load_mb']:.0f} MB; file {m['file_mb']:.0f} MB + KV "
          f"{m['kv_mb']:.0f} MB + 512 MB = budget {budget:.0f} MB; ratio peak/budget "
          f"{m['peak_mb'] / budget:.2f}; a naive all-logits buffer: {m['naive_all_logits_mb']:.0f} MB)")
    print()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TEMPLATES), help="default: each model in turn")
    parser.add_argument("--tokens", type=int, default=6000, help="conversation length to reach")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-only", action="store_true", help="peak memory, no timing")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [args.model] if args.model else list(TEMPLATES)
    if args.memory_child:
        memory_child(names[0], args.tokens, args.threads)
        return 0
    for name in names:
        memory(name, args.tokens, args.threads)
        if not args.memory_only:
            timing(name, args.tokens, args.reps, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
