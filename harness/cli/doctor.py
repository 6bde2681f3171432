"""`harness doctor`: the installed llama.cpp build against what this machine grants.

``--check`` runs a small batched decode of the default model with llama.cpp's default options
(``./dev`` runs it in a child process after installing a build: an instruction the OS does not
grant kills it with SIGILL, and setup falls back to the portable build). ``--brief`` prints the
one line setup shows.
"""

from __future__ import annotations

import argparse

from harness.untrusted.terminal import write, write_json


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.backends.llama_build import build_report

    if args.check:
        from harness.models.registry import resolve_model

        _, path = resolve_model(None)
        seconds = check_decode(str(path))
        write(f"batched decode of {path.name}: ok ({seconds:.2f} s)")
        return 0
    from harness.backends.llama_cpp import system_info

    report = build_report(system_info())
    if args.brief:
        write(report.brief())
        return 0
    if args.json:
        write_json(report.to_dict(), indent=2)
        return 0
    write(f"llama.cpp     {report.system_info}")
    write(f"CPU grants    {' '.join(report.granted) or '(not an x86-64 Linux machine: not probed)'}")
    if report.refused:
        write(f"not granted   {' '.join(report.refused)} (advertised by CPUID; the OS does not grant it)")
    write(f"build uses    {report.brief()}")
    write(f"CMAKE_ARGS    {report.cmake_args if report.cmake_args is not None else '(not installed by ./dev)'}")
    return 0


def check_decode(model_path: str, n_prompt: int = 64, n_decode: int = 8) -> float:
    """Run the code paths a build's instruction sets reach: load `model_path` with llama.cpp's
    own defaults rather than harness's decode path (repacked weights and extra buffer types such
    as AMX, one KV stream, the tiled matmul), decode `n_prompt` tokens as one batch, then
    `n_decode` one at a time. Returns seconds taken. A build using an instruction the OS does not
    grant kills the process here (SIGILL): ./dev runs it in a child."""
    import os
    import time

    from harness.backends.base import EngineOptions
    from harness.backends.llama_cpp import TILED_MATMUL_ENV, LlamaCppBackend

    os.environ[TILED_MATMUL_ENV] = "1"  # this process only checks the build, then exits
    t0 = time.perf_counter()
    backend = LlamaCppBackend(model_path, n_ctx=n_prompt + n_decode + 8, n_threads=2, n_batch=n_prompt,
                              engine=EngineOptions(flash_attn="off", repack=True, kv_unified=True))
    try:
        tokens = backend.tokenize("The quick brown fox jumps over the lazy dog. " * 8)[:n_prompt]
        backend.decode(tokens, all_logits=False)
        for token in tokens[:n_decode]:
            backend.decode([token], all_logits=False)
    finally:
        backend.close()
    return time.perf_counter() - t0
