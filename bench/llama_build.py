"""The llama.cpp build setup chose against a native build (-march=native) of the same version on the
same machine, and against the portable build: prompt processing and decode speed, in one run.

Each build is a llama-cpp-python wheel from ./dev's machine-wide cache (built there when missing,
``./dev wheel``), unpacked into a temporary folder; each measurement is a child process importing
llama_cpp from one of them (PYTHONPATH), loading the model, then timing a 256-token prompt as one
batch (pp) and 64 tokens decoded one at a time (tg). Builds are interleaved round by round; the
figures are medians, the ratios medians of per-round ratios. Speeds are given per second of the
child's CPU time (``time.process_time``; with one thread llama.cpp computes on the calling thread)
as well as per wall second: on a machine shared with other jobs the wall clock counts the time
spent waiting for a core, which the CPU clock does not.

    python bench/llama_build.py [--rounds 5] [--threads 1] [--models smollm2,gemma3-270m]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_PROMPT, N_DECODE = 256, 64


def child(model: str, threads: int) -> None:
    """Runs inside a child process: one pp and one tg measurement, as JSON on stdout."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=model, n_ctx=N_PROMPT + N_DECODE + 8, n_batch=N_PROMPT,
                          n_ubatch=N_PROMPT, n_threads=threads, n_threads_batch=threads, verbose=False)
    text = b"The history of the lighthouse begins with fires lit on hills to guide ships home. " * 40
    tokens = llm.tokenize(text)[:N_PROMPT]
    llm.eval(tokens[:32])  # warm-up: weights paged in, buffers allocated
    llm.reset()
    t0, c0 = time.perf_counter(), time.process_time()
    llm.eval(tokens)
    t1, c1 = time.perf_counter(), time.process_time()
    for token in tokens[:N_DECODE]:
        llm.eval([token])
    t2, c2 = time.perf_counter(), time.process_time()
    info = llama_cpp.llama_print_system_info().decode()
    print(json.dumps({"pp": len(tokens) / (t1 - t0), "tg": N_DECODE / (t2 - t1),
                      "pp_cpu": len(tokens) / (c1 - c0), "tg_cpu": N_DECODE / (c2 - c1), "info": info}))


def wheel(args: str | None) -> Path:
    env = dict(os.environ)
    env.pop("CMAKE_ARGS", None)
    if args is not None:
        env["CMAKE_ARGS"] = args
    out = subprocess.run([str(ROOT / "dev"), "wheel"], env=env, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def cpu_identity() -> str:
    """A short hash of this CPU's model name and flags. ./dev caches a wheel by its flag set; a
    native build's flags do not say which CPU it was built for, so the bench adds this (CMake
    ignores the unused variable) rather than run a native build made on another host."""
    import hashlib

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown"
    keep = sorted({line for line in lines if line.startswith(("model name", "flags"))})
    return hashlib.sha256("\n".join(keep).encode()).hexdigest()[:12]


def measure(folder: Path, model: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(folder))
    out = subprocess.run([sys.executable, __file__, "--child", model, "--threads", str(threads)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default="smollm2,gemma3-270m")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=CMAKE_ARGS",
                    help="another flag set to measure beside them")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.threads)
        return
    from harness.backends.llama_build import PORTABLE_X86, cmake_args, probe
    from harness.models.registry import resolve_model

    chosen = (ROOT / ".venv" / ".harness-llama-args").read_text().strip() \
        if (ROOT / ".venv" / ".harness-llama-args").exists() else cmake_args(probe())
    builds = {"chosen": chosen, "native": f"-DGGML_NATIVE=ON -DHARNESS_CPU={cpu_identity()}",
              "portable": PORTABLE_X86}
    builds |= dict(item.split("=", 1) for item in args.also)
    print(f"chosen: CMAKE_ARGS='{chosen}'")
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name, flags in builds.items():
            folders[name] = Path(tmp) / name
            with zipfile.ZipFile(wheel(flags)) as whl:
                whl.extractall(folders[name])
        for model_name in args.models.split(","):
            _, path = resolve_model(model_name)
            runs: dict[str, list[dict]] = {name: [] for name in builds}
            for _ in range(args.rounds):
                for name in builds:
                    runs[name].append(measure(folders[name], str(path), args.threads))
            print(f"\n{model_name} ({path.name}), {args.threads} thread(s), {args.rounds} rounds interleaved")
            for name in builds:
                simd = [k for k, v in (p.split("=") for p in runs[name][0]["info"].split("|")[1:] if "=" in p)
                        if k.strip().startswith("AVX") and v.strip() == "1"]
                med = {k: statistics.median(r[k] for r in runs[name]) for k in ("pp", "tg", "pp_cpu", "tg_cpu")}
                print(f"  {name:9} per CPU s: pp {med['pp_cpu']:7.1f}  tg {med['tg_cpu']:6.1f} tok/s   "
                      f"per wall s: pp {med['pp']:7.1f}  tg {med['tg']:6.1f} tok/s  ({' '.join(s.strip() for s in simd)})")
            for other in [b for b in builds if b != "chosen"]:
                r = {k: statistics.median(a[k] / b[k] for a, b in zip(runs["chosen"], runs[other], strict=True))
                     for k in ("pp", "tg", "pp_cpu", "tg_cpu")}
                print(f"  chosen / {other:8}: per CPU s pp {r['pp_cpu']:.3f}  tg {r['tg_cpu']:.3f}   "
                      f"per wall s pp {r['pp']:.3f}  tg {r['tg']:.3f}")


if __name__ == "__main__":
    main()
