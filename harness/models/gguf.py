"""Read the metadata header of a GGUF model file without loading the model.

Decides what harness knows about a model before llama.cpp sees it: architecture, vocabulary
size, context length, special tokens and chat template. Stdlib only, so inspecting a model is
fast and needs no model library. Every count and length in the file is checked against the
bytes that remain *before* it is used, so a truncated or corrupt file raises ModelError and
never allocates more than the file could hold. Only the key/value section is read; arrays that
are not needed are skipped (fixed-size elements in one jump, strings by walking their lengths).
Memory is counted in what Python really spends: of the token strings only every
``_TOKEN_STRIDE``-th offset is kept (8 bytes each), so a vocabulary of zero-length strings costs
a small fraction of its bytes on disk, not several times them.
"""

from __future__ import annotations

import mmap
import os
import struct
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from harness.errors import ModelError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)

_PREFIX = struct.Struct("<4sI")  # magic, version
_COUNTS = struct.Struct("<QQ")  # tensor_count, kv_count
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STRING, _ARRAY = 8, 9
# value type code -> struct format: uint8 int8 uint16 int16 uint32 int32 float32 bool
# uint64 int64 float64 (8 is a string and 9 an array, read separately)
_SCALARS: dict[int, struct.Struct] = {
    code: struct.Struct("<" + fmt)
    for code, fmt in zip((0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12), "BbHhIif?Qqd", strict=True)
}
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, tensor type, data offset
_MIN_ARRAY_BYTES = 4 + 8  # element type, count
_MAX_ARRAY_DEPTH = 8
_TOKENS = "tokenizer.ggml.tokens"
_TOKEN_STRIDE = 64  # one kept offset per this many token strings
_T = TypeVar("_T")
_CORRUPT = "the file is damaged or incomplete; download or assemble the model again"


@dataclass(frozen=True)
class GGUFInfo:
    """What the header of one GGUF file says; None where the file does not say it."""

    path: str
    file_size: int
    version: int
    tensor_count: int
    architecture: str | None
    name: str | None
    n_vocab: int | None
    context_length: int | None
    bos_token_id: int | None
    eos_token_id: int | None
    eot_token_id: int | None
    bos_token: str | None
    eos_token: str | None
    eot_token: str | None
    add_bos: bool | None
    chat_template: str | None = field(repr=False)
    scalars: Mapping[str, object] = field(repr=False)

    @property
    def named_templates(self) -> dict[str, str]:
        """The named chat templates (``tokenizer.chat_template.<name>``: tool_use, rag, ...)."""
        prefix = "tokenizer.chat_template."
        return {k[len(prefix):]: v for k, v in sorted(self.scalars.items())
                if k.startswith(prefix) and isinstance(v, str)}


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read the header of the GGUF file at `path`; ModelError if it is missing or malformed."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _PREFIX.size + _COUNTS.size:
                raise ModelError(
                    f"file is too short to be a GGUF model ({size} bytes)",
                    where=where,
                    hint=_CORRUPT,
                )
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                try:
                    return _Reader(mm, size, where).info()
                except (struct.error, IndexError, ValueError, OverflowError) as err:
                    raise ModelError(f"file is corrupt: {err}", where=where, hint=_CORRUPT) from None
    except FileNotFoundError:
        raise ModelError("model file not found", where=where, hint="check the path") from None
    except OSError as err:
        raise ModelError(f"cannot read model file: {err.strerror or err}", where=where) from None


@dataclass(frozen=True)
class _TokenIndex:
    """The token array: how many strings, and where every ``_TOKEN_STRIDE``-th begins."""

    count: int
    checkpoints: array


class _Reader:
    """A cursor over the mapped file that refuses to read past its end."""

    def __init__(self, mm: mmap.mmap, size: int, where: str):
        self.mm, self.size, self.where, self.pos = mm, size, where, 0

    def fail(self, message: str, hint: str = _CORRUPT) -> ModelError:
        return ModelError(message, where=self.where, hint=hint)

    def truncated(self, what: str, at: int, n: int) -> ModelError:
        left = self.size - at
        return self.fail(
            f"file is truncated or corrupt: {what} at byte {at} needs {n} bytes, {left} remain"
        )

    def take(self, n: int, what: str) -> int:
        """Claim the next `n` bytes for `what`; return where they start."""
        at = self.pos
        if n > self.size - at:
            raise self.truncated(what, at, n)
        self.pos = at + n
        return at

    def u32(self, what: str) -> int:
        return _U32.unpack_from(self.mm, self.take(4, what))[0]

    def string(self, what: str) -> str:
        n = _U64.unpack_from(self.mm, self.take(8, f"the length of {what}"))[0]
        at = self.take(n, what)
        return self.mm[at : at + n].decode("utf-8", errors="replace")

    def info(self) -> GGUFInfo:
        magic, version = _PREFIX.unpack_from(self.mm, self.take(_PREFIX.size, "the header"))
        if magic != MAGIC:
            raise self.fail(
                f"not a GGUF file (starts with {magic!r}, expected {MAGIC!r})",
                hint="pass a .gguf model file",
            )
        if version not in SUPPORTED_VERSIONS:
            raise self.fail(
                f"GGUF version {version} is not supported (only 2 and 3)",
                hint="convert the model again with a recent llama.cpp",
            )
        n_tensors, n_kv = _COUNTS.unpack_from(self.mm, self.take(_COUNTS.size, "the header"))
        room = self.size - self.pos
        if n_kv * _MIN_KV_BYTES + n_tensors * _MIN_TENSOR_BYTES > room:
            raise self.fail(
                f"header claims {n_kv} metadata entries and {n_tensors} tensors, "
                f"more than the remaining {room} bytes can hold"
            )
        scalars: dict[str, object] = {}
        tokens: _TokenIndex | None = None
        seen: set[str] = set()
        for i in range(n_kv):
            key = self.string(f"the key of metadata entry {i}")
            if key in seen:  # llama.cpp would take one, harness the other: refuse both
                raise self.fail(f"metadata key {key!r} appears twice")
            seen.add(key)
            vtype = self.u32(f"the value type of {key!r}")
            if vtype != _ARRAY:
                scalars[key] = self.scalar(vtype, key)
                continue
            etype, count = self.array_header(key)
            if key == _TOKENS and etype == _STRING:
                tokens = _TokenIndex(count, array("Q"))
                self.walk_strings(count, key, tokens.checkpoints)
            else:
                self.skip_elements(etype, count, key, depth=1)
        return self.assemble(version, n_tensors, scalars, tokens)

    def scalar(self, vtype: int, key: str) -> object:
        if vtype == _STRING:
            return self.string(f"the value of {key!r}")
        unpacker = _SCALARS.get(vtype)
        if unpacker is None:
            raise self.fail(f"metadata {key!r} has unknown value type {vtype}")
        return unpacker.unpack_from(self.mm, self.take(unpacker.size, f"the value of {key!r}"))[0]

    def array_header(self, key: str) -> tuple[int, int]:
        etype = self.u32(f"the element type of {key!r}")
        count = _U64.unpack_from(self.mm, self.take(8, f"the length of {key!r}"))[0]
        if etype == _STRING:
            least = 8
        elif etype == _ARRAY:
            least = _MIN_ARRAY_BYTES
        elif etype in _SCALARS:
            least = _SCALARS[etype].size
        else:
            raise self.fail(f"array {key!r} has unknown element type {etype}")
        room = self.size - self.pos
        if count * least > room:
            raise self.fail(
                f"array {key!r} claims {count} elements, "
                f"more than the remaining {room} bytes can hold"
            )
        return etype, count

    def skip_elements(self, etype: int, count: int, key: str, depth: int) -> None:
        if etype == _STRING:
            self.walk_strings(count, key, None)
        elif etype == _ARRAY:
            if depth >= _MAX_ARRAY_DEPTH:
                raise self.fail(f"array {key!r} is nested more than {_MAX_ARRAY_DEPTH} deep")
            for _ in range(count):
                inner, n = self.array_header(key)
                self.skip_elements(inner, n, key, depth + 1)
        else:
            self.take(count * _SCALARS[etype].size, f"the elements of {key!r}")

    def walk_strings(self, count: int, key: str, checkpoints: array | None) -> None:
        """Step over `count` strings, noting where every ``_TOKEN_STRIDE``-th one starts when
        `checkpoints` is given."""
        mm, size, pos, unpack = self.mm, self.size, self.pos, _U64.unpack_from
        for i in range(count):
            if size - pos < 8:
                raise self.truncated(f"the length of element {i} of {key!r}", pos, 8)
            n = unpack(mm, pos)[0]
            if n > size - pos - 8:
                raise self.truncated(f"element {i} of {key!r}", pos + 8, n)
            if checkpoints is not None and i % _TOKEN_STRIDE == 0:
                checkpoints.append(pos)
            pos += 8 + n
        self.pos = pos

    def token_text(self, tokens: _TokenIndex | None, token_id: int | None) -> str | None:
        if tokens is None or token_id is None or not 0 <= token_id < tokens.count:
            return None
        pos = tokens.checkpoints[token_id // _TOKEN_STRIDE]  # the walk checked every length after it
        for _ in range(token_id % _TOKEN_STRIDE):
            pos += 8 + _U64.unpack_from(self.mm, pos)[0]
        self.pos = pos
        return self.string(f"token {token_id}")

    def assemble(
        self, version: int, n_tensors: int, scalars: dict[str, object], tokens: _TokenIndex | None
    ) -> GGUFInfo:
        arch = _get(scalars, "general.architecture", str)
        ids = {
            role: _get(scalars, f"tokenizer.ggml.{role}_token_id", int)
            for role in ("bos", "eos", "eot")
        }
        return GGUFInfo(
            path=self.where,
            file_size=self.size,
            version=version,
            tensor_count=n_tensors,
            architecture=arch,
            name=_get(scalars, "general.name", str),
            n_vocab=None if tokens is None else tokens.count,
            context_length=_get(scalars, f"{arch}.context_length", int) if arch else None,
            bos_token_id=ids["bos"],
            eos_token_id=ids["eos"],
            eot_token_id=ids["eot"],
            bos_token=self.token_text(tokens, ids["bos"]),
            eos_token=self.token_text(tokens, ids["eos"]),
            eot_token=self.token_text(tokens, ids["eot"]),
            add_bos=_get(scalars, "tokenizer.ggml.add_bos_token", bool),
            chat_template=_get(scalars, "tokenizer.chat_template", str),
            scalars=MappingProxyType(scalars),
        )


def _get(scalars: Mapping[str, object], key: str, kind: type[_T]) -> _T | None:
    """The value at `key` if it has the expected kind (a bool is not an int here)."""
    value = scalars.get(key)
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None
