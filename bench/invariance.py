"""One number per token: the invariant decode path against llama.cpp's default one, in one run.

Two decode paths of the same build (harness.backends.llama_cpp explains the first):

- ``invariant``: harness's default (flash attention, K f16 / V bf16, a KV stream per sequence, no
  repacked weights, no tiled K-quant matmul);
- ``default``: what llama.cpp does unless told otherwise (repacked weights, one unified KV cache,
  flash attention off, f16 V, the tiled matmul): engine options ``repack: true, kv_unified: true,
  flash_attn: off, type_v: f16`` and ``GGML_CPU_TILED_MM=1``.

Part 1, the claim: an experiment of 2 models x 3 conversations x 5 seeds run with ``harness run`` at
``batch: 1`` and ``batch: 16`` on each path; how many cells give identical texts, and the largest
difference of a per-token statistic on the tokens both runs share.

Part 2, the cost: the same four runs' throughput (generated tokens per second, model load
excluded), and prompt scoring (``Workbench.score`` of a ~1,500-token conversation, tokens per
second, best of 3) and serial decoding (tokens per second, best of 3) in a child process per path
and model. Ratios are invariant / default, measured in this one run. Run it alone on the machine.

    python bench/invariance.py [--seeds 5] [--tokens 48] [--skip-claim] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = {
    "invariant": ({}, {}),
    "default": ({"repack": True, "kv_unified": True, "flash_attn": "off", "type_v": "f16"},
                {"GGML_CPU_TILED_MM": "1"}),
}
MODELS = {"smollm2": "gguf", "gemma3-270m": "gemma"}
CONVERSATIONS = """\
conversations:
  - name: tea
    messages: [{role: user, content: "How do I brew green tea? Keep it short."}]
  - name: trip
    messages:
      - {role: system, content: "You are a terse travel agent."}
      - {role: user, content: "Plan one day in Lisbon."}
  - name: capital
    messages:
      - {role: user, content: "Hi!"}
      - {role: assistant, content: "Hello! How can I help you today?"}
      - {role: user, content: "What is the capital of France, and why is it famous?"}
"""


def experiment(path: str, batch: int, seeds: int, tokens: int) -> str:
    engine = json.dumps(PATHS[path][0])
    models = "\n".join(f"  - {{name: {m}, templates: [{t}], engine: {engine}}}" for m, t in MODELS.items())
    return (f"name: invariance-{path}-b{batch}\nmodels:\n{models}\nmodes: [reply]\neos: [stop]\n"
            f"sampling:\n  t: {{temperature: 0.9, top_k: 40, top_p: 0.95, min_p: 0.05, max_tokens: {tokens}}}\n"
            f"seeds: {list(range(1, seeds + 1))}\nn_ctx: 1024\nthreads: 2\nbatch: {batch}\n{CONVERSATIONS}")


def run(tmp: Path, path: str, batch: int, seeds: int, tokens: int) -> tuple[Path, float, int]:
    exp = tmp / f"{path}-{batch}.yaml"
    exp.write_text(experiment(path, batch, seeds, tokens))
    db = tmp / f"{path}-{batch}.sqlite"
    env = {**os.environ, **PATHS[path][1], "HARNESS_HOME": str(tmp / "home")}
    subprocess.run([sys.executable, "-m", "harness", "run", str(exp), "--db", str(db)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = sqlite3.connect(db)
    seconds, = conn.execute("SELECT sum(seconds) FROM cells").fetchone()  # cells' own time, loads excluded
    made, = conn.execute("SELECT count(*) FROM tokens WHERE scope = 'generated'").fetchone()
    conn.close()
    return db, float(seconds), int(made)


def turns(db: Path) -> dict[tuple, tuple[str, list[tuple]]]:
    conn = sqlite3.connect(db)
    out: dict[tuple, tuple[str, list[tuple]]] = {}
    for cid, model, conv, seed, text in conn.execute(
            "SELECT c.id, c.model, c.conversation, c.seed, t.text FROM cells c JOIN turns t ON t.cell_id = c.id"):
        rows = conn.execute("SELECT k.token_id, k.entropy_bits, k.surprisal_bits, k.eot_prob FROM tokens k "
                            "JOIN turns t ON t.id = k.turn_id WHERE t.cell_id = ? AND k.scope = 'generated' "
                            "ORDER BY k.pos", (cid,)).fetchall()
        out[(model, conv, seed)] = (text, rows)
    conn.close()
    return out


def compare(a: Path, b: Path) -> tuple[int, int, float]:
    """(identical texts, cells, max |difference| of entropy/surprisal/EOT on shared prefixes)."""
    x, y = turns(a), turns(b)
    same, worst = 0, 0.0
    for key, (text, rows) in x.items():
        text2, rows2 = y[key]
        same += text == text2
        for r, s in zip(rows, rows2, strict=False):
            if r[0] != s[0]:
                break
            worst = max(worst, *(abs(p - q) for p, q in zip(r[1:], s[1:], strict=True)))
    return same, len(x), worst


def claim(seeds: int, tokens: int) -> dict[str, dict[int, tuple[float, int]]]:
    speeds: dict[str, dict[int, tuple[float, int]]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for path in PATHS:
            dbs = {}
            for batch in (1, 16):
                db, seconds, made = run(tmp, path, batch, seeds, tokens)
                dbs[batch] = db
                speeds.setdefault(path, {})[batch] = (seconds, made)
            same, cells, worst = compare(dbs[1], dbs[16])
            print(f"{path:9s} batch 1 vs 16: {same}/{cells} identical texts; largest per-token difference "
                  f"on shared prefixes {worst:.1e} (entropy/surprisal bits, EOT probability)")
    print()
    for batch in (1, 16):
        rates = {p: speeds[p][batch][1] / speeds[p][batch][0] for p in PATHS}
        print(f"generation, batch {batch:2d}: invariant {rates['invariant']:.1f} tok/s, default "
              f"{rates['default']:.1f} tok/s, ratio {rates['invariant'] / rates['default']:.2f}")
    print()
    return speeds


def child(path: str, model: str, threads: int) -> None:
    """In a child process (the tiled-matmul switch is per process): score and decode speed."""
    from harness.backends.base import EngineOptions
    from harness.generation.settings import SamplingParams
    from harness.generation.workbench import Workbench
    from harness.models.registry import open_backend
    from harness.prompt.conversation import Conversation
    from harness.prompt.templates import load_template

    backend = open_backend(model, n_ctx=2048, n_threads=threads, engine=EngineOptions.from_mapping(PATHS[path][0]))
    bench = Workbench(backend, load_template(MODELS[model], embedded=backend.info.chat_template, model_name=model))
    conv = Conversation()
    for i in range(400):
        conv = conv.append("user", f"Question {i}: what did the dragon do on day {i}?") if i % 2 == 0 else \
            conv.append("assistant", f"On day {i} the dragon flew over {i * 7} hills and slept near the river.")
        if i % 2 and len(bench.prompt_records(bench.plan(conv, "as-is"))) >= 1500:
            break
    n = len(bench.prompt_records(bench.plan(conv, "as-is")))
    score = []
    for _ in range(3):
        bench.evaluator.forget()
        t0 = time.perf_counter()
        bench.score(conv)
        score.append(n / (time.perf_counter() - t0))
    decode = []
    plan = bench.plan(Conversation.of(("user", "Tell me a long story about a dragon.")))
    for seed in range(3):
        bench.evaluator.forget()
        gen = bench.generate(plan, SamplingParams(seed=seed, eos="ban", max_tokens=128))
        decode.append(len(gen.tokens) / gen.seconds)
    print(json.dumps({"score": max(score), "decode": max(decode), "tokens": n,
                      "invariant": backend.decode_path.invariant}))
    backend.close()


def speed(threads: int) -> None:
    for model in MODELS:
        got = {}
        for path in PATHS:
            env = {**os.environ, **PATHS[path][1]}
            out = subprocess.run([sys.executable, __file__, "--child", path, model, "--threads", str(threads)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            got[path] = json.loads(out.strip().splitlines()[-1])
        inv, dft = got["invariant"], got["default"]
        print(f"{model}: score {inv['tokens']} tokens: invariant {inv['score']:.0f} tok/s, default {dft['score']:.0f} "
              f"tok/s, ratio {inv['score'] / dft['score']:.2f}; serial decode: invariant {inv['decode']:.1f} "
              f"tok/s, default {dft['decode']:.1f} tok/s, ratio {inv['decode'] / dft['decode']:.2f} "
              f"(probe: invariant={inv['invariant']}, default={dft['invariant']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-claim", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.threads)
        return 0
    print(f"load {os.getloadavg()[0]:.2f}")
    if not args.skip_claim:
        claim(args.seeds, args.tokens)
    if not args.skip_speed:
        speed(args.threads)
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
