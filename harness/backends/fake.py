"""A small deterministic backend for fast tests of the loop, the session and the REPL.

Its vocabulary is 256 byte tokens plus a list of special tokens. Its "model" prefers to say a
script: after a context ending with some prefix of the script it puts most probability on the
script's next token (so tests can make it run past an end-of-turn and write a user turn);
elsewhere its logits are a fixed pseudo-random function of the last token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from harness.backends.base import DecodePath, ModelInfo

DEFAULT_SPECIALS = ("<s>", "</s>", "<|im_start|>", "<|im_end|>")
# a row is a function of the tokens before it alone: invariant by construction
FAKE_PATH = DecodePath(flash_attn="n/a", type_k="n/a", type_v="n/a", kv_unified=False, repack=False,
                       tiled_matmul=False, n_batch=16, n_gpu_layers=0, build="fake", invariant=True,
                       probe="the fake backend computes each row from its own tokens")
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


class FakeBackend:
    def __init__(self, script: str = "", *, specials: Sequence[str] = DEFAULT_SPECIALS,
                 eog: Sequence[str] = ("</s>", "<|im_end|>"), n_ctx: int = 4096,
                 chat_template: str | None = CHATML, confidence: float = 12.0, add_bos: bool = False):
        self.specials = list(specials)
        self.n_vocab = 256 + len(self.specials)
        eog_ids = frozenset(256 + self.specials.index(t) for t in eog)
        self.info = ModelInfo("fake", "<fake>", "fake", self.n_vocab, n_ctx, n_ctx, eog_ids,
                              256, 257, "<s>", "</s>", add_bos, chat_template)
        self.script = self.tokenize(script)
        self.confidence = confidence
        self._tokens: list[int] = []
        rng = np.random.default_rng(1234)
        self._table = rng.normal(0.0, 1.0, size=(self.n_vocab, self.n_vocab)).astype(np.float32)
        self._out = np.zeros((0, self.n_vocab), dtype=np.float32)
        self.decode_calls = 0
        self._sequences: FakeSequences | None = None
        self.decode_path = FAKE_PATH

    @property
    def n_past(self) -> int:
        return len(self._tokens)

    @property
    def max_logit_rows(self) -> int:
        return 16

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        out: list[int] = []
        i = 0
        while i < len(text):
            for j, name in enumerate(self.specials if special else ()):
                if text.startswith(name, i):
                    out.append(256 + j)
                    i += len(name)
                    break
            else:
                out.extend(text[i].encode("utf-8"))
                i += 1
        return out

    def piece(self, token: int) -> bytes:
        return bytes([token]) if token < 256 else self.specials[token - 256].encode()

    def is_special(self, token: int) -> bool:
        return token >= 256

    def token_id(self, text: str) -> int | None:
        if text in self.specials:
            return 256 + self.specials.index(text)
        data = text.encode("utf-8")
        return data[0] if len(data) == 1 else None

    def truncate(self, n_keep: int) -> int:
        del self._tokens[n_keep:]
        return len(self._tokens)

    def _row(self, context: list[int]) -> np.ndarray:
        row = self._table[context[-1]].copy() if context else np.zeros(self.n_vocab, np.float32)
        for k in range(min(len(self.script), len(context)), 0, -1):
            if context[-k:] == self.script[:k] and k < len(self.script):
                row[self.script[k]] += self.confidence
                break
        else:
            if self.script and context and context[-1] != self.script[0]:
                row[self.script[0]] += self.confidence / 2
        return row

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray:
        if len(self._tokens) + len(tokens) > self.info.n_ctx:
            raise RuntimeError("fake context full")
        self.decode_calls += 1
        rows = []
        for token in tokens:
            self._tokens.append(int(token))
            if all_logits:
                rows.append(self._row(self._tokens))
        if not all_logits:
            rows.append(self._row(self._tokens))
        self._out = np.stack(rows)
        return self._out if all_logits else self._out[-1]

    def sequences(self, n_seq: int, n_ctx: int) -> FakeSequences:
        held = self._sequences
        if held is None or held.n_seq_max < n_seq or held.info.n_ctx < n_ctx:
            self._sequences = FakeSequences(self, n_seq, n_ctx)
        return self._sequences

    def close(self) -> None:
        self._tokens.clear()


class FakeSequences:
    """The fake model over several sequences: each sequence's rows are exactly what the fake
    gives that sequence's tokens alone, so batched and serial runs must agree bit for bit."""

    def __init__(self, model: FakeBackend, n_seq: int, n_ctx: int):
        self.model = model
        self.n_seq_max = n_seq
        self.info = replace(model.info, n_ctx=n_ctx)
        self.seqs: list[list[int]] = [[] for _ in range(n_seq)]
        self.decode_calls = 0
        self.step_sizes: list[int] = []

    @property
    def n_past(self) -> int:
        return len(self.seqs[0])

    @property
    def max_logit_rows(self) -> int:
        return self.model.max_logit_rows

    def truncate(self, n_keep: int) -> int:
        for seq in self.seqs[1:]:
            seq.clear()
        del self.seqs[0][n_keep:]
        return len(self.seqs[0])

    def decode(self, tokens: Sequence[int], *, all_logits: bool) -> np.ndarray:
        self.decode_calls += 1
        rows = []
        for token in tokens:
            self.seqs[0].append(int(token))
            rows.append(self.model._row(self.seqs[0]))
        out = np.stack(rows)
        return out if all_logits else out[-1]

    def fork(self, n: int) -> None:
        for seq in range(1, n):
            self.seqs[seq] = list(self.seqs[0])

    def step(self, seqs: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        self.decode_calls += 1
        self.step_sizes.append(len(seqs))
        rows = []
        for seq, token in zip(seqs, tokens, strict=True):
            if len(self.seqs[seq]) + 1 > self.info.n_ctx:
                raise RuntimeError("fake batch context full")
            self.seqs[seq].append(int(token))
            rows.append(self.model._row(self.seqs[seq]))
        return np.stack(rows)

    def close(self) -> None:
        self.seqs = [[] for _ in range(self.n_seq_max)]
