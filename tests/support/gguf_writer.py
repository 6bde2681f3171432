"""A tiny GGUF writer: metadata-only files for the reader's tests (no tensors)."""

from __future__ import annotations

import struct
from pathlib import Path

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?"}
_FMT |= {U64: "Q", I64: "q", F64: "d"}


def gstr(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw


def kv(key: str, vtype: int, value: object) -> bytes:
    body = gstr(value) if vtype == STR else struct.pack("<" + _FMT[vtype], value)
    return gstr(key) + struct.pack("<I", vtype) + body


def kv_array(key: str, etype: int, items: list, count: int | None = None) -> bytes:
    if etype == STR:
        body = b"".join(gstr(item) for item in items)
    else:
        body = b"".join(struct.pack("<" + _FMT[etype], item) for item in items)
    n = len(items) if count is None else count
    return gstr(key) + struct.pack("<IIQ", ARR, etype, n) + body


def gguf(
    kvs: list[bytes],
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    n_tensors: int = 0,
    n_kv: int | None = None,
) -> bytes:
    count = len(kvs) if n_kv is None else n_kv
    return magic + struct.pack("<IQQ", version, n_tensors, count) + b"".join(kvs)


TOKENS = ["<pad>", "<s>", "</s>", "<eot>", "héllo", "b"]


TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"


def tiny_kvs() -> list[bytes]:
    """Every scalar type, a string array, a numeric array and a nested array."""
    nested = gstr("tiny.nested") + struct.pack("<IIQ", ARR, ARR, 2)
    nested += struct.pack("<IQ", U16, 2) + struct.pack("<HH", 7, 8)
    nested += struct.pack("<IQ", STR, 1) + gstr("x")
    return [
        kv("general.architecture", STR, "tiny"),
        kv("general.name", STR, "Tiny Test"),
        kv("tiny.context_length", U32, 512),
        kv_array("tokenizer.ggml.tokens", STR, TOKENS),
        kv_array("tokenizer.ggml.scores", F32, [0.0] * len(TOKENS)),
        kv_array("tokenizer.ggml.merges", STR, ["h é", "l l"]),
        nested,
        kv("tokenizer.ggml.bos_token_id", U32, 1),
        kv("tokenizer.ggml.eos_token_id", U32, 2),
        kv("tokenizer.ggml.eot_token_id", I32, 3),
        kv("tokenizer.ggml.add_bos_token", BOOL, True),
        kv("tokenizer.chat_template", STR, TEMPLATE),
        kv("t.u8", U8, 255),
        kv("t.i8", I8, -1),
        kv("t.u16", U16, 65535),
        kv("t.i16", I16, -2),
        kv("t.i32", I32, -3),
        kv("t.f32", F32, 0.5),
        kv("t.u64", U64, 2**64 - 1),
        kv("t.i64", I64, -(2**63)),
        kv("t.f64", F64, 0.25),
    ]


def write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path
