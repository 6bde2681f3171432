"""Servers, measured on the real llama-server (.venv/bin/llama-server, as ./dev test builds it):

1. what ``n_probs`` costs: for k in --ks, the bytes of a streamed /completion per generated token
   and the seconds per token, against the width of the entropy bounds that k gives (greedy replies
   of each bundled model, 2 slots);
2. candidates decoded together: N seeded candidates of one prompt (``/retry N``,
   ``generate(n=)``, an experiment's seeds) one after another against ``generate_many`` on a
   server with N slots, and ``run --backend URL`` of an experiment's cells with ``--parallel 1``
   against ``--parallel N``. Interleaved repetitions; medians; ratios in the same run.

    python bench/remote.py [--candidates 4] [--tokens 64] [--reps 3] [--ks 10,20,50,100,200,500]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from harness.generation.open import open_server_workbench
from harness.generation.settings import SamplingParams
from harness.models.registry import resolve_model
from harness.prompt.conversation import Conversation

STORY = Conversation.of(("user", "Tell me a long story about a dragon who learns to sing."))
QUESTIONS = ("Say hi.", "What is the capital of France?", "Write a haiku about the sea.",
             "Explain photosynthesis to a child.")


class Server:
    """llama-server on loopback, as the real-server tests start it."""

    def __init__(self, model: Path, slots: int, threads: int):
        binary = os.environ.get("HARNESS_LLAMA_SERVER") or str(Path(sys.prefix) / "bin" / "llama-server")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                                      "-c", str(1024 * slots), "-t", str(threads), "--parallel", str(slots),
                                      "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("llama-server did not start") from None
                time.sleep(0.3)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def streamed_bytes(url: str, prompt: str, k: int, tokens: int) -> tuple[int, int]:
    """(bytes of the streamed answer, tokens in it) of one greedy /completion with n_probs k."""
    body = json.dumps({"prompt": prompt, "n_predict": tokens, "temperature": 0.0, "n_probs": k,
                       "stream": True, "return_tokens": True, "post_sampling_probs": False}).encode()
    request = urllib.request.Request(url + "/completion", data=body, headers={"Content-Type": "application/json"})
    size = count = 0
    with urllib.request.urlopen(request, timeout=600) as answer:
        for line in answer:
            size += len(line)
            count += line.startswith(b"data:") and b'"completion_probabilities":[{' in line
    return size, count


def n_probs_cost(model: str, ks: list[int], tokens: int, reps: int, threads: int) -> None:
    _, path = resolve_model(model)
    server = Server(path, slots=2, threads=threads)
    try:
        bench = open_server_workbench(server.url, "chatml" if model != "smollm2" else None)
        plans = [bench.plan(Conversation.of(("user", text))) for text in QUESTIONS]
        bench.generate(plans[0], SamplingParams(temperature=0.0, max_tokens=8))  # warm-up
        seconds: dict[int, list[float]] = {k: [] for k in ks}
        widths: dict[int, list[float]] = {k: [] for k in ks}
        for rep in range(reps):  # k interleaved, so a busy moment of the machine hits every k
            for k in ks:
                params = SamplingParams(temperature=0.0, max_tokens=tokens, eos="ban", n_probs=k)
                for plan in plans:
                    gen = bench.generate(plan, params)
                    seconds[k].append(gen.seconds / len(gen.tokens))
                    if rep == 0:
                        widths[k] += [t.stats.entropy_bounds_bits[1] - t.stats.entropy_bounds_bits[0]
                                      for t in gen.tokens]
        print(f"\n{model} (vocabulary {bench.info.n_vocab}): n_probs cost, greedy, {tokens} tokens x "
              f"{len(QUESTIONS)} prompts x {reps} reps")
        print(f"{'k':>6} {'KB/token':>9} {'ms/token':>9} {'vs k=' + str(ks[0]):>8} {'mean width':>11} {'max width':>10}")
        base = statistics.median(seconds[ks[0]])
        for k in ks:
            size, counted = streamed_bytes(server.url, plans[0].prompt, k, tokens)
            ms = statistics.median(seconds[k])
            print(f"{k:6d} {size / max(counted, 1) / 1024:9.1f} {1000 * ms:9.1f} {ms / base:8.2f} "
                  f"{statistics.mean(widths[k]):11.3f} {max(widths[k]):10.3f}")
    finally:
        server.close()


def candidates(n: int, tokens: int, reps: int, threads: int) -> None:
    _, path = resolve_model("smollm2")
    server = Server(path, slots=n, threads=threads)
    try:
        bench = open_server_workbench(server.url, None)
        plan = bench.plan(STORY)
        params = [SamplingParams(temperature=0.8, seed=s, max_tokens=tokens, eos="ban") for s in range(n)]
        serial, together = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            alone = [bench.generate(plan, p) for p in params]
            serial.append(sum(len(g.tokens) for g in alone) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            many = bench.generate_many(plan, params)
            together.append(sum(len(g.tokens) for g in many) / (time.perf_counter() - t0))
            same = all([t.id for t in a.tokens] == [t.id for t in b.tokens] for a, b in zip(alone, many, strict=True))
        ratio = statistics.median(b / a for a, b in zip(serial, together, strict=True))
        print(f"\n{n} candidates x {tokens} tokens on SmolLM2 (server with {n} slots, {threads} thread(s)), {reps} reps")
        print(f"  one after another  {statistics.median(serial):7.1f} tok/s")
        print(f"  together           {statistics.median(together):7.1f} tok/s   ratio {ratio:.2f}"
              f"   (same tokens as serial: {same})")
        cells(server.url, n, tokens, reps)
    finally:
        server.close()


def cells(url: str, n: int, tokens: int, reps: int) -> None:
    """`harness run --backend URL --parallel K` of 8 cells (2 conversations x 4 seeds)."""
    exp = ("models: [{name: smollm2, label: smollm2}]\neos: [ban]\nseeds: [1, 2, 3, 4]\n"
           f"max_tokens: {tokens}\nsampling: {{t: {{temperature: 0.8}}}}\nconversations:\n"
           "  - {name: a, messages: [{role: user, content: Tell me about the sea.}]}\n"
           "  - {name: b, messages: [{role: user, content: Tell me about the mountains.}]}\n")
    rates: dict[int, list[float]] = {1: [], n: []}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "cells.yaml"
        spec.write_text(exp)
        for rep in range(reps):
            for parallel in (1, n):
                db = Path(tmp) / f"{parallel}-{rep}.sqlite"
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "harness", "run", str(spec), "--db", str(db), "--backend", url,
                                "--parallel", str(parallel)], check=True, capture_output=True)
                rates[parallel].append(8 / (time.perf_counter() - t0) * 60)
    ratio = statistics.median(b / a for a, b in zip(rates[1], rates[n], strict=True))
    print(f"  harness run, 8 cells: --parallel 1 {statistics.median(rates[1]):6.1f} cells/min, "
          f"--parallel {n} {statistics.median(rates[n]):6.1f} cells/min   ratio {ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ks", default="10,20,50,100,200,500")
    ap.add_argument("--models", default="smollm2,gemma3-270m")
    ap.add_argument("--skip-cost", action="store_true")
    # one server thread: on a shared 2-core machine a second thread waits at every barrier for
    # a core someone else holds (2 threads measured 120-780 ms/token on SmolLM2 here)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not args.skip_cost:
        for model in args.models.split(","):
            n_probs_cost(model, [int(k) for k in args.ks.split(",")], args.tokens, args.reps, args.threads)
    candidates(args.candidates, args.tokens, args.reps, args.threads)


if __name__ == "__main__":
    main()
