"""The in-process llama.cpp backend (the only module that imports llama_cpp).

It loads a GGUF through llama-cpp-python's low-level wrappers (model, context, batch) and drives
the context directly: its own batches, logits read as numpy views of llama.cpp's output buffer,
the KV cache truncated in place for prefix reuse. No completion API is used.

**The decode path.** llama.cpp's CPU kernels change with the shape of a decode, so by default
the logits of a token depend on how many rows were decoded with it, which sequences shared the
batch and how long the cache was. harness runs llama.cpp on a path where a row's logits are a
function of the model, the build, the engine options and the tokens before it only (measured by
``bench/invariance.py``; ggml-cpu's own switches named in brackets):

- flash attention on, K cache f16 and V cache bf16: ggml's tiled flash attention (>= 64 query
  rows of one sequence) and its split-KV decode (one query row over >= 512 cached cells, split by
  thread) both need K and V of one type (an f32 cache is cast to f16 before attention, so f32 does
  not count), so they never run; every row takes the row-by-row kernel, which skips masked cells
  and so ignores cache padding. bf16 V moves logits from an f32 reference no further than the
  f16 default does (bench/invariance.py measures both);
- a KV stream per sequence (``kv_unified`` off): a sequence attends over its own cells in
  position order whatever its batch-mates do;
- no repacked weights (``use_extra_bufts`` off) and no tiled K-quant matmul
  (``GGML_CPU_TILED_MM=0``; from 8 rows up it would replace the per-row dot products).

Engine options may leave this path (``repack: true``, ``kv_unified: true``, another ``type_v``,
``flash_attn: off``); :mod:`harness.models.probe` then finds the path not invariant, and the
one-line notice and the run's records say so.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from harness.backends.base import DecodePath, EngineOptions, ModelInfo
from harness.errors import ContextOverflowError, ModelError

LOGIT_BUDGET_BYTES = 128 * 1024 * 1024  # most logits one prompt batch may produce (see bench/score.py)
TILED_MATMUL_ENV = "GGML_CPU_TILED_MM"  # read once per process by ggml-cpu, at its first matmul
GGML_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20,
              "bf16": 30}  # ggml.h's enum ggml_type (llama-cpp-python does not export them all)


GGML_LOG_ERROR = 4  # ggml_log_level in the libggml llama-cpp-python 0.3.36 builds
_log_lines: collections.deque[tuple[int, str]] = collections.deque(maxlen=4000)  # a load logs ~1,000 lines
_log_callback = None  # the ctypes callback must outlive every call llama.cpp makes into it


def _quiet_llama_logs() -> None:
    """Replace llama-cpp-python's log callback with one that prints nothing and remembers the
    last lines, so a failed load can say what llama.cpp said instead of "Failed to load"."""
    global _log_callback
    import llama_cpp
    import llama_cpp._logger as llama_logger

    llama_logger.logger.setLevel(logging.CRITICAL)
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def remember(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", "replace").strip()
        if line:
            _log_lines.append((level, line))

    _log_callback = remember
    llama_cpp.llama_log_set(remember, ctypes.c_void_p(0))


def _last_llama_error() -> str | None:
    """The most specific error llama.cpp logged: the last error line that is not its generic
    "failed to load model", without the function-name prefix."""
    errors = [line for level, line in _log_lines
              if level == GGML_LOG_ERROR and not line.endswith("failed to load model")]
    if not errors:
        return None
    said = errors[-1]
    if said.split(":", 1)[0].isidentifier():
        said = said.split(": ", 1)[-1]
    return said.removeprefix("error loading model: ")


def _one_blas_thread() -> None:
    """numpy's BLAS to one thread for the rest of the process. The statistics' dot products are
    too small to gain from more, and idle OpenBLAS threads spin on the cores llama.cpp's threads
    decode on next (scoring on Gemma-3: 0.82 -> 0.91 of a bare all-logits decode)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def system_info() -> str:
    """llama.cpp's description of its build (the CPU features it was compiled for, the backends)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def decode_path(engine: EngineOptions, *, n_batch: int) -> DecodePath:
    """The decode path these options give in this process (before the invariance verdict)."""
    import llama_cpp

    os.environ.setdefault(TILED_MATMUL_ENV, "0")
    flash_attn = engine.flash_attn or "on"
    return DecodePath(
        flash_attn=flash_attn, type_k=engine.type_k or "f16",
        type_v=engine.type_v or ("bf16" if flash_attn == "on" else "f16"), kv_unified=bool(engine.kv_unified), repack=bool(engine.repack),
        tiled_matmul=os.environ.get(TILED_MATMUL_ENV) != "0", n_batch=n_batch,
        n_gpu_layers=engine.n_gpu_layers or 0,
        build=f"llama-cpp-python {llama_cpp.__version__}; {system_info()}")


def _model_params(lib, path: DecodePath, engine: EngineOptions, vocab_only: bool):
    params = lib.llama_model_default_params()
    params.vocab_only = vocab_only
    params.use_extra_bufts = path.repack
    if engine.n_gpu_layers is not None:
        params.n_gpu_layers = engine.n_gpu_layers
    params.load_mode = lib.LLAMA_LOAD_MODE_NONE if engine.use_mmap is False else lib.LLAMA_LOAD_MODE_MMAP
    return params


def _context_params(lib, path: DecodePath, *, n_ctx: int, n_seq: int, threads: int):
    params = lib.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = params.n_ubatch = max(path.n_batch, n_seq)
    params.n_seq_max = n_seq
    params.n_threads = params.n_threads_batch = threads
    params.swa_full = True
    params.kv_unified = path.kv_unified
    params.flash_attn_type = 1 if path.flash_attn == "on" else 0
    params.type_k, params.type_v = GGML_TYPES[path.type_k], GGML_TYPES[path.type_v]
    return params


def _decode_count(tokens: Sequence[int], limit: int) -> int:
    """How many tokens one decode gets (1..`limit`: the logit rows or the batch it can hold)."""
    count = len(tokens)
    if count == 0 or count > limit:
        raise ValueError(f"decode takes 1..{limit} tokens, got {count}")
    return count


class LlamaCppBackend:
    def __init__(self, path: str | Path, *, name: str | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None, n_batch: int = 512, vocab_only: bool = False,
                 engine: EngineOptions | None = None):
        import llama_cpp
        from llama_cpp._internals import LlamaModel

        engine = engine or EngineOptions()
        _quiet_llama_logs()
        _one_blas_thread()
        self._lib = llama_cpp
        self.decode_path = decode_path(engine, n_batch=engine.n_batch or n_batch)
        path = str(path)
        self._threads = n_threads or os.cpu_count() or 1
        _log_lines.clear()
        try:
            with _stderr_silenced():
                self._model = LlamaModel(path_model=path, verbose=False,
                                         params=_model_params(llama_cpp, self.decode_path, engine, vocab_only))
        except Exception as exc:  # noqa: BLE001 - llama-cpp-python raises ValueError, ctypes others
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            said = _last_llama_error()
            if said and first.lower().startswith("failed to load model"):
                first = said
            raise ModelError(f"llama.cpp could not load the model: {first}", where=path,
                             hint="check that the file is a complete GGUF llama.cpp supports") from None
        self._load_log = [line for _, line in _log_lines]
        self._vocab = self._model.vocab
        lib, vocab = llama_cpp, self._vocab
        n_vocab = lib.llama_vocab_n_tokens(vocab)
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        eog = frozenset(i for i in range(n_vocab) if lib.llama_vocab_is_eog(vocab, i))
        meta = self._model.metadata()
        bos, eos = lib.llama_vocab_bos(vocab), lib.llama_vocab_eos(vocab)
        n_ctx_train = self._model.n_ctx_train()
        self.info = ModelInfo(
            name=name or Path(path).stem, path=path,
            architecture=meta.get("general.architecture", "?"), n_vocab=n_vocab,
            n_ctx=n_ctx, n_ctx_train=n_ctx_train, eog_ids=eog,
            bos_id=bos if bos >= 0 else None, eos_id=eos if eos >= 0 else None,
            bos_text=self.piece(bos).decode("utf-8", "replace") if bos >= 0 else "",
            eos_text=self.piece(eos).decode("utf-8", "replace") if eos >= 0 else "",
            add_bos=bool(lib.llama_vocab_get_add_bos(vocab)),
            chat_template=meta.get("tokenizer.chat_template") or None,
        )
        self._sequences: LlamaSequences | None = None
        self._main: LlamaSequences | None = None
        if not vocab_only:
            self._main = LlamaSequences(self, 1, n_ctx)
            self.info = replace(self.info, n_ctx=self._main.info.n_ctx)

    def _context(self) -> LlamaSequences:
        if self._main is None:
            raise ModelError("this model was loaded for its vocabulary only", where=self.info.path)
        return self._main

    @property
    def n_past(self) -> int:
        return self._main.n_past if self._main is not None else 0

    @property
    def threads(self) -> int:
        return self._threads

    def context_report(self) -> dict[str, object]:
        """What llama.cpp says the context is: sizes read from the context, flash attention and
        KV cache types from its load log (the only place llama.cpp states them)."""
        lib, ctx = self._lib, self._context()._ctx.ctx
        report: dict[str, object] = {"n_ctx": lib.llama_n_ctx(ctx), "n_batch": lib.llama_n_batch(ctx),
                                     "n_ubatch": lib.llama_n_ubatch(ctx), "n_seq_max": lib.llama_n_seq_max(ctx),
                                     "n_gpu_layers": self._model.params.n_gpu_layers,
                                     "use_mmap": self._model.params.load_mode != lib.LLAMA_LOAD_MODE_NONE,
                                     "repack": bool(self._model.params.use_extra_bufts)}
        for line in self._context().load_log:
            if "flash_attn" in line and "=" in line:
                report["flash_attn"] = line.rsplit("=", 1)[1].strip()
            if " K (" in line and " V (" in line:
                report["type_k"] = line.split(" K (", 1)[1].split(")", 1)[0]
                report["type_v"] = line.split(" V (", 1)[1].split(")", 1)[0]
        return report

    @property
    def max_logit_rows(self) -> int:
        return self._context().max_logit_rows

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        # Sized by the text, not by the model's (possibly corrupt) training context length as
        # llama-cpp-python's tokenize is: a token is at least one byte.
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (self._lib.llama_token * size)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, special)
        if n < 0:
            size = -n
            buf = (self._lib.llama_token * size)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, special)
        if n < 0:
            raise ModelError(f"llama.cpp could not tokenize {len(data)} bytes", where=self.info.path)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = self._piece_buf
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        data = buf.raw[:n]
        self._pieces[token] = data
        return data

    def is_special(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_control(self._vocab, token)) or token in self.info.eog_ids

    def token_id(self, text: str) -> int | None:
        ids = self.tokenize(text)
        return ids[0] if len(ids) == 1 else None

    def truncate(self, n_keep: int) -> int:
        return self._context().truncate(n_keep)

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray:
        return self._context().decode(tokens, all_logits=all_logits)

    def sequences(self, n_seq: int, n_ctx: int) -> LlamaSequences:
        """A context of this model for `n_seq` sequences of up to `n_ctx` cells each (kept while
        big enough; a bigger request replaces it)."""
        held = self._sequences
        if held is not None and held.n_seq_max >= n_seq and held.info.n_ctx >= n_ctx:
            return held
        if held is not None:
            held.close()
            self._sequences = None
        self._sequences = LlamaSequences(self, n_seq, n_ctx)
        return self._sequences

    def close(self) -> None:
        for held in (self._sequences, self._main):
            if held is not None:
                held.close()
        self._sequences = self._main = None
        with contextlib.suppress(Exception):
            self._model.close()


class LlamaSequences:
    """One llama.cpp context of a loaded model for ``n_seq`` sequences (see base.Sequences).

    The backend's own context is one of these with a single sequence; ``generate_many`` uses one
    with several. Each sequence has a KV stream of ``info.n_ctx`` cells (unless engine options
    unify them), so ``fork`` copies the prompt's cells from sequence 0 to the others. A step is
    one ``llama_decode`` whose batch holds one token per live sequence, each asking for logits;
    the rows come back in batch order.
    """

    def __init__(self, backend: LlamaCppBackend, n_seq: int, n_ctx: int):
        from llama_cpp._internals import LlamaContext

        lib = backend._lib
        self._lib = lib
        self._path = backend.decode_path
        unified = self._path.kv_unified
        total = n_ctx * n_seq  # unified: the sequences share the cells, n_ctx each at most
        params = _context_params(lib, self._path, n_ctx=total, n_seq=n_seq, threads=backend._threads)
        _log_lines.clear()
        try:
            with _stderr_silenced():
                self._ctx = LlamaContext(model=backend._model, params=params, verbose=False)
        except ValueError as exc:
            raise ModelError(f"llama.cpp could not make a context of {total} cells for {n_seq} "
                             f"sequence(s): {_last_llama_error() or exc}", where=backend.info.path,
                             hint="lower n_ctx or the batch size") from None
        self.load_log = [line for _, line in _log_lines]
        self._mem = lib.llama_get_memory(self._ctx.ctx)
        self._n_batch = int(params.n_batch)
        self._batch = lib.llama_batch_init(self._n_batch, 0, 1)
        self.n_seq_max = n_seq
        per_sequence = lib.llama_n_ctx_seq(self._ctx.ctx) if not unified else n_ctx
        self.info = replace(backend.info, n_ctx=int(per_sequence))
        self._pos = [0] * n_seq

    @property
    def n_past(self) -> int:
        return self._pos[0]

    @property
    def max_logit_rows(self) -> int:
        return max(1, min(self._n_batch, LOGIT_BUDGET_BYTES // (4 * self.info.n_vocab)))

    def truncate(self, n_keep: int) -> int:
        n_keep = max(0, min(n_keep, self._pos[0]))
        for seq in range(1, self.n_seq_max):
            if self._pos[seq]:
                self._lib.llama_memory_seq_rm(self._mem, seq, 0, -1)
                self._pos[seq] = 0
        if n_keep < self._pos[0] and not self._lib.llama_memory_seq_rm(self._mem, 0, n_keep, -1):
            self._lib.llama_memory_clear(self._mem, True)
            n_keep = 0
        self._pos[0] = n_keep
        return n_keep

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray:
        count = _decode_count(tokens, self.max_logit_rows if all_logits else self._n_batch)
        start = self._pos[0]
        if start + count > self.info.n_ctx:
            raise ContextOverflowError(
                f"{start + count} tokens do not fit the context of {self.info.n_ctx}",
                hint="raise n_ctx (--n-ctx / /set n_ctx) or shorten the conversation")
        self._run([0] * count, tokens, [start + i for i in range(count)], all_logits)
        self._pos[0] += count
        if all_logits:
            return self._rows(count)
        ptr = self._lib.llama_get_logits_ith(self._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.info.n_vocab,))

    def fork(self, n: int) -> None:
        if not 1 <= n <= self.n_seq_max:
            raise ValueError(f"fork takes 1..{self.n_seq_max} sequences, got {n}")
        for seq in range(1, n):
            self._lib.llama_memory_seq_rm(self._mem, seq, 0, -1)
            self._lib.llama_memory_seq_cp(self._mem, 0, seq, 0, -1)
            self._pos[seq] = self._pos[0]

    def step(self, seqs: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        count = len(tokens)
        if count == 0 or count != len(seqs) or count > self._n_batch:
            raise ValueError(f"step takes 1..{self._n_batch} (sequence, token) pairs")
        if max(self._pos[s] for s in seqs) + 1 > self.info.n_ctx:
            raise ContextOverflowError(f"a sequence outgrew the batch context of {self.info.n_ctx}",
                                       hint="raise n_ctx or lower the batch size")
        self._run(seqs, tokens, [self._pos[s] for s in seqs], True)
        for s in seqs:
            self._pos[s] += 1
        return self._rows(count)

    def _run(self, seqs: Sequence[int], tokens: Sequence[int], positions: Sequence[int],
             all_logits: bool) -> None:
        batch = self._batch
        count = len(tokens)
        batch.n_tokens = count
        for i in range(count):
            batch.token[i] = tokens[i]
            batch.pos[i] = positions[i]
            batch.seq_id[i][0] = seqs[i]
            batch.n_seq_id[i] = 1
            batch.logits[i] = all_logits
        batch.logits[count - 1] = True
        status = self._lib.llama_decode(self._ctx.ctx, batch)
        if status != 0:
            raise ModelError(f"llama.cpp decode failed (status {status})", where=self.info.path,
                             hint="status 1: no room in the KV cache; raise n_ctx")

    def _rows(self, count: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits(self._ctx.ctx)
        return np.ctypeslib.as_array(ptr, shape=(count, self.info.n_vocab))

    def close(self) -> None:
        if self._batch is not None:
            self._lib.llama_batch_free(self._batch)
            self._batch = None
        with contextlib.suppress(Exception):
            self._ctx.close()


@contextlib.contextmanager
def _stderr_silenced():
    """llama.cpp prints load chatter straight to fd 2; hide it, keep Python's sys.stderr."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)
