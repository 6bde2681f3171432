"""Load a model once in a sacrificial child process before harness loads it in-process.

harness's header reader refuses broken GGUF structure, but a file can be well-formed and still
crash llama.cpp (a tensor retyped to another type of the same size, an absurd hyper-parameter):
llama.cpp then aborts or segfaults, which would take the REPL and its unsaved state with it.
So a file is first checked structurally (harness.models.gguf_checks), then loaded and run for two tokens in a child with a memory limit and a timeout;
a child killed by a signal becomes a ModelError. The verdict is remembered per (size, mtime,
sha256 of the first MiB: the header and metadata), so each file pays this once (~0.5 s), a copied
or moved file is not probed again, and a multi-GB model is not loaded twice on every start. The
child maps the file (no second copy in memory) and the in-process load then finds it in the page
cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from harness.backends.base import DecodePath, EngineOptions
from harness.errors import ModelError
from harness.models.gguf_checks import check_gguf
from harness.paths import cache_dir

PROBE_SECONDS = 180
PROBE_MEMORY_BYTES = 8 * 1024**3  # raised to file size + 4 GiB for larger models


HEADER_BYTES = 1024 * 1024


def _key(path: Path) -> str:
    st = path.stat()
    digest = hashlib.sha256(f"{st.st_size}|{st.st_mtime_ns}|".encode())
    with path.open("rb") as f:
        digest.update(f.read(HEADER_BYTES))
    return digest.hexdigest()[:32]


def _memory_limiter(file_size: int):
    want = max(PROBE_MEMORY_BYTES, file_size + 4 * 1024**3)

    def limit_memory() -> None:  # runs in the child before exec
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return limit_memory


def _run_child(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`_child(path, *args)` in a limited child process; a crash, a timeout or an error exit is a
    ModelError naming the file."""
    code = "import sys; from harness.models.probe import _child; _child(*sys.argv[1:])"
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(path), *args], capture_output=True, text=True,
                              timeout=PROBE_SECONDS, preexec_fn=_memory_limiter(path.stat().st_size),
                              env=os.environ.copy())
    except subprocess.TimeoutExpired:
        raise ModelError(f"llama.cpp did not finish loading the model within {PROBE_SECONDS} s",
                         where=str(path), hint="the file may be damaged") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise ModelError(f"cannot start the model probe: {exc}", where=str(path),
                         hint="check free memory and process limits") from None
    if proc.returncode < 0:
        raise ModelError(f"llama.cpp crashed (signal {-proc.returncode}) loading this file",
                         where=str(path), hint="the file is damaged; download or assemble the model again")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ModelError(f"llama.cpp could not load the model: {last}", where=str(path),
                         hint="check that the file is a complete GGUF llama.cpp supports")
    return proc


def _remember(marker: Path, text: str) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(text)
    except OSError:
        pass  # an unwritable cache only means probing again next time


def probe_model(path: str | Path) -> None:
    """Raise ModelError if llama.cpp cannot load and run `path` without dying."""
    path = Path(path)
    marker = cache_dir() / "probes" / f"{_key(path)}.ok"
    if marker.is_file():
        return
    check_gguf(path)  # structural defects get a precise message before llama.cpp sees them
    _run_child(path)
    _remember(marker, "ok\n")


def probe_decode_path(path: str | Path, decode: DecodePath, engine: EngineOptions,
                      threads: int) -> DecodePath:
    """`decode` with the invariance verdict for this file, measured once in a child process with
    these options and thread count (harness.backends.invariance) and remembered per file, decode
    path and thread count."""
    path = Path(path)
    settings = json.dumps({**decode.settings(), "threads": threads, "engine": engine.to_dict()},
                          sort_keys=True)
    key = hashlib.sha256(f"{_key(path)}|{settings}".encode()).hexdigest()[:32]
    marker = cache_dir() / "probes" / f"{key}.decode.json"
    try:
        said = json.loads(marker.read_text())
        if isinstance(said, dict) and isinstance(said.get("invariant"), bool) and isinstance(said.get("probe"), str):
            return replace(decode, invariant=said["invariant"], probe=said["probe"])
    except (OSError, ValueError):
        pass
    proc = _run_child(path, json.dumps(engine.to_dict()), str(threads))
    try:
        said = json.loads(proc.stdout.strip().splitlines()[-1])
        verdict = replace(decode, invariant=bool(said["invariant"]), probe=str(said["probe"]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise ModelError("the decode-path probe gave no verdict", where=str(path),
                         hint="run `harness models` to see whether llama.cpp loads the file") from None
    _remember(marker, json.dumps({"invariant": verdict.invariant, "probe": verdict.probe}))
    return verdict


def _child(path: str, engine: str | None = None, threads: str | None = None) -> None:
    """In the child: load and decode two tokens, or (given engine options and a thread count)
    measure the decode path's invariance and print it as JSON; exit 0 (any failure is a non-zero
    exit)."""
    from harness.backends.llama_cpp import LlamaCppBackend

    try:
        if engine is None or threads is None:
            backend = LlamaCppBackend(path, n_ctx=64, n_threads=1)
            first = backend.info.bos_id if backend.info.bos_id is not None else 0
            backend.tokenize("probe <|im_start|> text")
            backend.decode([first, first], all_logits=True)
        else:
            from harness.backends.invariance import measure

            options = EngineOptions.from_mapping(json.loads(engine))
            backend = LlamaCppBackend(path, n_ctx=1024, n_threads=int(threads), engine=options)
            found = measure(backend)
            print(json.dumps({"invariant": found.invariant, "probe": found.describe()}))
        backend.close()
    except Exception as exc:  # reported by the parent as one line
        said = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        print(str(said).removeprefix("llama.cpp could not load the model: ").replace("\n", " "),
              file=sys.stderr)
        sys.exit(3)
