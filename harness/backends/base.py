"""What harness needs from a model engine: tokens in, logits out, a rewindable KV cache.

A backend never samples and never computes statistics: it tokenizes, evaluates tokens at the
end of its cache, hands back *views* of the logits it produced, and drops cache entries past a
position. Everything else (sampling, entropy, roles) lives in the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    architecture: str
    n_vocab: int
    n_ctx: int
    n_ctx_train: int
    eog_ids: frozenset[int]
    bos_id: int | None
    eos_id: int | None
    bos_text: str
    eos_text: str
    add_bos: bool
    chat_template: str | None


class Backend(Protocol):
    info: ModelInfo
    decode_path: DecodePath  # how logits are computed, with the invariance verdict

    @property
    def n_past(self) -> int:
        """Number of tokens held in the KV cache."""

    @property
    def max_logit_rows(self) -> int:
        """Most tokens one `decode(..., all_logits=True)` call may take."""

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`, no BOS added; `special`: control-token strings become control
        tokens (False: they are spelled out as plain text)."""

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for, special tokens rendered as their text."""

    def is_special(self, token: int) -> bool:
        """Whether a token is a control token (shown distinctly; never plain text)."""

    def token_id(self, text: str) -> int | None:
        """The id of a token whose text is exactly `text`, if there is one."""

    def truncate(self, n_keep: int) -> int:
        """Drop cache entries from position `n_keep` on; returns the positions actually kept."""

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray:
        """Evaluate `tokens` after the cache. Returns a view valid until the next call:
        (len(tokens), n_vocab) logits if `all_logits`, else the last row (n_vocab,)."""

    def close(self) -> None: ...


class Sequences(Protocol):
    """Several sequences decoded together over one KV cache of the same model.

    Sequence 0 holds the shared prompt: for it, this is a :class:`Backend` (``n_past``,
    ``truncate``, ``decode``), so the prompt evaluator drives it unchanged; truncating it drops
    every other sequence. :meth:`fork` makes sequences 1..n-1 copies of sequence 0 (the prompt is
    evaluated once), and :meth:`step` evaluates one token for each of several sequences in one
    decode, returning their logits as a (len, n_vocab) view valid until the next call.
    """

    info: ModelInfo
    n_seq_max: int

    @property
    def n_past(self) -> int: ...

    @property
    def max_logit_rows(self) -> int: ...

    def truncate(self, n_keep: int) -> int: ...

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray: ...

    def fork(self, n: int) -> None:
        """Sequences 1..n-1 become copies of sequence 0 (whatever they held is dropped)."""

    def step(self, seqs: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """Evaluate tokens[i] at the end of sequence seqs[i], all in one decode."""

    def close(self) -> None: ...


class MultiSequenceBackend(Backend, Protocol):
    """A backend that can decode several sequences at once (local llama.cpp, the fake)."""

    def sequences(self, n_seq: int, n_ctx: int) -> Sequences:
        """A multi-sequence context for at least `n_seq` sequences of up to `n_ctx` cells each
        (kept and reused while it is big enough)."""


KV_TYPES = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0", "iq4_nl")
FLASH_ATTN = ("on", "off")


@dataclass(frozen=True)
class EngineOptions:
    """How llama.cpp loads and runs a model (real-size models: GPU offload, KV quantisation).

    Declared once for profiles (``engine:``), experiments (``engine:`` at the top or per model) and
    the CLI (``--n-gpu-layers``, ``--flash-attn``, ``--type-k``, ``--type-v``, ``--no-mmap``,
    ``--n-batch``, ``--repack``, ``--kv-unified``). None leaves harness's default, the
    batch-invariant decode path (:mod:`harness.backends.llama_cpp`): flash attention on, K f16,
    V bf16, no repacked weights, a KV stream per sequence. A quantised V cache needs flash attention.
    """

    n_gpu_layers: int | None = None  # -1: every layer
    flash_attn: str | None = None  # on | off (default on)
    type_k: str | None = None  # KV_TYPES (default f16)
    type_v: str | None = None  # KV_TYPES (default bf16)
    use_mmap: bool | None = None
    n_batch: int | None = None
    repack: bool | None = None  # llama.cpp's repacked CPU weights (default off: not batch-invariant)
    kv_unified: bool | None = None  # one KV stream for all sequences (default off: not batch-invariant)

    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"n_gpu_layers": (int,), "flash_attn": (str, bool), "type_k": (str,), "type_v": (str,),
              "use_mmap": (bool,), "n_batch": (int,), "repack": (bool,), "kv_unified": (bool,)}

    @classmethod
    def from_mapping(cls, data: dict[str, object]) -> EngineOptions:
        """Checked options; a ValueError names the field (the caller adds file and line)."""
        for key, value in data.items():
            types = cls.FIELDS.get(key)
            if types is None:
                raise ValueError(f"{key}: unknown field (known: {', '.join(cls.FIELDS)})")
            if value is not None and (isinstance(value, bool) and bool not in types or not isinstance(value, types)):
                raise ValueError(f"{key}: expected {types[0].__name__}, got {value!r}")
        data = dict(data)
        if isinstance(data.get("flash_attn"), bool):  # YAML reads `on` / `off` as booleans
            data["flash_attn"] = "on" if data["flash_attn"] else "off"
        options = cls(**data)  # type: ignore[arg-type]
        options.check()
        return options

    def check(self) -> None:
        if self.flash_attn is not None and self.flash_attn not in FLASH_ATTN:
            raise ValueError(f"flash_attn: must be one of {', '.join(FLASH_ATTN)}")
        for key in ("type_k", "type_v"):
            value = getattr(self, key)
            if value is not None and value not in KV_TYPES:
                raise ValueError(f"{key}: must be one of {', '.join(KV_TYPES)}")
        if self.n_batch is not None and self.n_batch < 1:
            raise ValueError("n_batch: must be at least 1")
        if self.type_v not in (None, "f16", "f32", "bf16") and self.flash_attn == "off":
            raise ValueError("type_v: a quantised V cache needs flash attention (on unless flash_attn: off)")

    def merged(self, over: EngineOptions) -> EngineOptions:
        """These options with every field `over` sets replaced."""
        return EngineOptions(**{k: getattr(over, k) if getattr(over, k) is not None else getattr(self, k)
                                for k in self.FIELDS})

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class DecodePath:
    """How a local engine computes logits: the settings that decide whether a token's logits
    depend on the shape of the decode it was computed in, the llama.cpp build, and the verdict of
    the invariance probe (:mod:`harness.models.probe`; None until probed). Recorded with every
    run and part of an experiment's digest, so runs on different paths are never mixed."""

    flash_attn: str
    type_k: str
    type_v: str
    kv_unified: bool
    repack: bool
    tiled_matmul: bool
    n_batch: int
    n_gpu_layers: int
    build: str
    invariant: bool | None = None
    probe: str = ""  # what the probe measured, one line

    def settings(self) -> dict[str, object]:
        """The settings alone (what the digest holds; the verdict follows from them)."""
        return {"flash_attn": self.flash_attn, "type_k": self.type_k, "type_v": self.type_v,
                "kv_unified": self.kv_unified, "repack": self.repack, "tiled_matmul": self.tiled_matmul,
                "n_batch": self.n_batch, "n_gpu_layers": self.n_gpu_layers, "build": self.build}

    def to_dict(self) -> dict[str, object]:
        return {**self.settings(), "invariant": self.invariant, "probe": self.probe}

    def notice(self) -> str | None:
        """One line for the user when the path is not invariant (None when it is or is unknown)."""
        if self.invariant is not False:
            return None
        return (f"note: llama.cpp's decode path is not batch-invariant with these engine options "
                f"({self.probe}); per-token values may depend on batch size, batch-mates and cache "
                "state, and runs record this")
