"""Structural checks of a GGUF file that llama.cpp asserts on, run before it ever parses it.

``harness.models.gguf`` reads the key/value header; these checks go further, each naming what is wrong:
the tensor-info section (names, dimensions, ggml types usable as weights, aligned in-bounds data
offsets without overlap), the hyper-parameters llama.cpp sizes buffers by or asserts on, and a
vocabulary without duplicate token texts. They walk the file through a read-only mmap and run
once per file, beside the sacrificial load of ``harness.models.probe`` (whose verdict is cached).
Found by ``bench/fuzz_gguf.py``: each check refuses mutations that used to abort llama.cpp.
"""

from __future__ import annotations

import math
import mmap
import struct
from pathlib import Path

from harness.errors import ModelError
from harness.models.gguf import read_gguf_info

GGUF_STRING, GGUF_ARRAY = 8, 9
SCALAR_FORMATS = dict(zip((0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12), "BbHhIif?Qqd", strict=True))
# ggml type code -> (block size, bytes per block), as libggml 0.25 defines them (ggml_blck_size,
# ggml_type_size); codes 4, 5, 31-33 and 36-38 are removed types
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17), 40: (64, 36), 41: (128, 18), 42: (64, 18),
}
GGML_F32 = 0
GGML_NON_WEIGHT_TYPES = {9: "q8_1", 15: "q8_K", 24: "i8", 25: "i16", 26: "i32", 27: "i64",
                         28: "f64"}  # no matmul / binary op takes these as weights
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64
LLAMA_MAX_LAYERS = 512
MAX_CONTEXT_LENGTH = 1 << 24  # llama-cpp-python's tokenize allocates 4 bytes x context_length
DEFAULT_ALIGNMENT = 32


class Cursor:
    """Reads little-endian fields of a buffer whose key/value section read_gguf_info accepted."""

    def __init__(self, data: bytes | mmap.mmap, pos: int = 0):
        self.data, self.pos = data, pos

    def read(self, fmt: str) -> tuple[int, int]:
        """(value, offset) of the next `fmt` field."""
        at = self.pos
        self.pos += struct.calcsize("<" + fmt)
        return struct.unpack_from("<" + fmt, self.data, at)[0], at

    def string(self) -> tuple[bytes, int]:
        """(bytes, offset of the length field) of the next string."""
        n, at = self.read("Q")
        self.pos += n
        return bytes(self.data[at + 8: at + 8 + n]), at


def _invalid(where: str, message: str) -> ModelError:
    return ModelError(message, where=where,
                      hint="the file is damaged or incomplete; download or assemble the model again")


def validate_tensor_infos(path: str | Path) -> None:
    """The tensor-info section: short unique names, 1..4 dimensions each >= 1 with a product
    that fits int64, a known ggml type usable for weights (1-D tensors f32) whose block size
    divides the first dimension, aligned data offsets in order, without overlap, inside the file.
    """
    where = str(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        cur, n_tensors, alignment = _skip_key_values(mm)
        if alignment <= 0 or alignment & (alignment - 1):
            raise _invalid(where, f"general.alignment {alignment} is not a power of two")
        spans = [_tensor_info(cur, len(mm), i, where) for i in range(n_tensors)]
        data_start = -(-cur.pos // alignment) * alignment
        _check_spans(spans, len(mm) - data_start, alignment, where)


def _skip_key_values(mm: mmap.mmap) -> tuple[Cursor, int, int]:
    """(cursor at the tensor infos, tensor count, general.alignment)."""
    cur = Cursor(mm, 8)
    n_tensors, _ = cur.read("Q")
    n_kv, _ = cur.read("Q")
    alignment = DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        key, _ = cur.string()
        vtype, _ = cur.read("I")
        if vtype == GGUF_ARRAY:
            _skip_array(cur)
        elif vtype == GGUF_STRING:
            cur.string()
        else:
            value, _ = cur.read(SCALAR_FORMATS[vtype])
            if key == b"general.alignment":
                alignment = int(value) if vtype == 4 else -1
    return cur, n_tensors, alignment


def _skip_array(cur: Cursor) -> None:
    etype, _ = cur.read("I")
    count, _ = cur.read("Q")
    if etype == GGUF_STRING:
        for _ in range(count):
            cur.string()
    elif etype == GGUF_ARRAY:
        for _ in range(count):
            _skip_array(cur)
    else:
        cur.pos += count * struct.calcsize("<" + SCALAR_FORMATS[etype])


def _tensor_info(cur: Cursor, size: int, i: int, where: str) -> tuple[int, int, str]:
    """(data offset, data bytes, name) of tensor `i`, every field checked before it is used."""
    if size - cur.pos < 8:
        raise _invalid(where, f"tensor {i} is cut off")
    n = struct.unpack_from("<Q", cur.data, cur.pos)[0]
    if not 0 < n < GGML_MAX_NAME or n > size - cur.pos - 8:
        raise _invalid(where, f"tensor {i} has a name of {n} bytes (1..{GGML_MAX_NAME - 1})")
    raw, _ = cur.string()
    name = raw.decode("utf-8", "replace")
    if size - cur.pos < 4:
        raise _invalid(where, f"tensor {name!r} is cut off")
    n_dims, _ = cur.read("I")
    if not 1 <= n_dims <= GGML_MAX_DIMS:
        raise _invalid(where, f"tensor {name!r} has {n_dims} dimensions (1..{GGML_MAX_DIMS})")
    if size - cur.pos < 8 * n_dims + 12:
        raise _invalid(where, f"tensor {name!r} is cut off")
    dims = [cur.read("Q")[0] for _ in range(n_dims)]
    ggml_type, _ = cur.read("I")
    offset, _ = cur.read("Q")
    if min(dims) < 1 or math.prod(dims) >= 1 << 63:
        raise _invalid(where, f"tensor {name!r} has dimensions {dims}")
    if ggml_type not in GGML_TYPES:
        raise _invalid(where, f"tensor {name!r} has unknown ggml type {ggml_type}")
    if ggml_type in GGML_NON_WEIGHT_TYPES or (n_dims == 1 and ggml_type != GGML_F32):
        kind = GGML_NON_WEIGHT_TYPES.get(ggml_type, f"type {ggml_type}")
        raise _invalid(where, f"tensor {name!r} ({n_dims}-D) has ggml type {kind}, which no "
                              "model weight of that shape uses")
    block_size, type_size = GGML_TYPES[ggml_type]
    if dims[0] % block_size:
        raise _invalid(where, f"tensor {name!r}: first dimension {dims[0]} is not a multiple "
                              f"of the block size {block_size} of ggml type {ggml_type}")
    return offset, math.prod(dims) // block_size * type_size, name


def _check_spans(spans: list[tuple[int, int, str]], room: int, alignment: int, where: str) -> None:
    """Tensor data: aligned, in order, without overlap, inside the data section; names unique."""
    end, names = 0, set()
    for offset, nbytes, name in spans:
        if name in names:
            raise _invalid(where, f"tensor {name!r} appears twice")
        names.add(name)
        if offset % alignment or offset < end:
            raise _invalid(where, f"tensor {name!r} data offset {offset} is misaligned or "
                                  "overlaps the previous tensor")
        end = offset + nbytes
        if end > room:
            raise _invalid(where, f"tensor {name!r} data ends at {end}, past the {room} bytes "
                                  "of tensor data the file holds")


def validate_hparams(path: str | Path) -> None:
    """Hyper-parameters llama.cpp asserts on or buffers are sized by: block_count in 1..512 (a
    missing one is llama.cpp's to refuse cleanly),
    context_length at most 2**24, every float of the architecture finite, epsilons >= 0."""
    info = read_gguf_info(path)
    where, arch, scalars = str(path), info.architecture, info.scalars
    if not arch:
        return
    blocks = scalars.get(f"{arch}.block_count")
    if blocks is not None and not (isinstance(blocks, int) and 1 <= blocks <= LLAMA_MAX_LAYERS):
        raise _invalid(where, f"{arch}.block_count is {blocks!r}, not 1..{LLAMA_MAX_LAYERS}")
    context = scalars.get(f"{arch}.context_length")
    if context is not None and not (isinstance(context, int) and 0 <= context <= MAX_CONTEXT_LENGTH):
        raise _invalid(where, f"{arch}.context_length is {context!r}, more than {MAX_CONTEXT_LENGTH}")
    for key, value in scalars.items():
        if not key.startswith(arch + ".") or not isinstance(value, float):
            continue
        if not math.isfinite(value) or (key.endswith("epsilon") and value < 0):
            raise _invalid(where, f"{key} is {value}")


def validate_vocab(path: str | Path) -> None:
    """Token texts are unique (llama.cpp asserts id_to_token.size() == token_to_id.size())."""
    info = read_gguf_info(path)
    if info.n_vocab is None:
        return
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        cur = Cursor(mm, 24)
        for _ in range(struct.unpack_from("<Q", mm, 16)[0]):
            key, _ = cur.string()
            vtype, _ = cur.read("I")
            if key == b"tokenizer.ggml.tokens" and vtype == GGUF_ARRAY:
                cur.pos += 12
                seen: dict[bytes, int] = {}
                for i in range(info.n_vocab):
                    text, _ = cur.string()
                    if seen.setdefault(text, i) != i:
                        raise _invalid(str(path), f"tokens {seen[text]} and {i} are both {text!r}")
                return
            if vtype == GGUF_ARRAY:
                _skip_array(cur)
            elif vtype == GGUF_STRING:
                cur.string()
            else:
                cur.pos += struct.calcsize("<" + SCALAR_FORMATS[vtype])


def check_gguf(path: str | Path) -> None:
    """Raise ModelError naming the first structural defect of `path` llama.cpp would trip on."""
    validate_hparams(path)
    validate_vocab(path)
    validate_tensor_infos(path)
