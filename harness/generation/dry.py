"""DRY ("don't repeat yourself"): a penalty on each token that would extend a repetition of the
recent context, computed as llama.cpp's DRY sampler computes it.

A token that follows an earlier occurrence of the context's current ending, when that ending is
at least ``allowed_length`` tokens long, loses ``multiplier * base ** (length - allowed_length)``
from its logit. Sequence breakers (by default a newline, ``:``, ``"`` and ``*``) cut the
repetition a match may reach back over; a token that is a whole breaker is never penalised.
Breakers are text: :func:`breaker_table` finds, once per vocabulary, every token that holds one
or begins one (with the tokens of the rest). Pure: token ids in, penalties out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

DEFAULT_BREAKERS = ("\n", ":", '"', "*")  # llama.cpp's defaults
MAX_BREAKER_BYTES = 40  # llama.cpp cuts a breaker to this many bytes
MAX_TAIL_TOKENS = 20  # and the rest of a breaker begun inside a token to this many tokens
FLOAT_MAX_LOG = 88.7228391  # ln of the largest float32: base ** exponent is clamped below it

Breakers = Mapping[int, tuple[tuple[int, ...], ...]]  # head token -> the tokens of the rest of a breaker


def breaker_table(n_vocab: int, piece: Callable[[int], bytes], tokenize: Callable[[str], list[int]],
                  breakers: Sequence[str] = DEFAULT_BREAKERS) -> dict[int, tuple[tuple[int, ...], ...]]:
    """Every token whose text holds a breaker (rest: empty) or ends in a breaker's beginning
    (rest: the tokens of what follows). `piece`: a token's bytes, special tokens as their text;
    `tokenize`: text to tokens, control-token text as plain text."""
    table: dict[int, list[tuple[int, ...]]] = {}
    for breaker in breakers:
        wanted = breaker.encode("utf-8")[:MAX_BREAKER_BYTES]
        if not wanted:
            continue
        for token in range(n_vocab):
            word = piece(token)
            if wanted[:1] not in word:
                continue
            if wanted in word:
                table.setdefault(token, []).append(())
                continue
            at = word.find(wanted[:1])
            while at >= 0:
                begun = word[at:]  # shorter than the breaker: the word does not hold it whole
                if wanted.startswith(begun):
                    rest = wanted[len(begun):].decode("utf-8", "replace")
                    tail = tuple(tokenize(rest)[:MAX_TAIL_TOKENS])
                    if tail not in table.setdefault(token, []):
                        table[token].append(tail)
                at = word.find(wanted[:1], at + 1)
    return {token: tuple(tails) for token, tails in table.items()}


def _repeat_limit(last: Sequence[int], breakers: Breakers) -> int:
    """How far back a repetition may reach: up to the nearest breaker (the longest one ending there)."""
    n = len(last)
    for i in range(n):
        tails = breakers.get(last[n - 1 - i])
        if not tails:
            continue
        longest = -1
        for tail in tails:
            if longest < len(tail) <= i and all(tail[o] == last[n - 1 - (i - o - 1)] for o in range(len(tail))):
                longest = len(tail)
        if longest >= 0:
            return i - longest
    return n


def _repeat_counts(back: Sequence[int], limit: int) -> list[int]:
    """counts[n - 1 - k]: how many tokens ending at position k from the end repeat the context's
    ending (`back` is the context reversed), at most `limit`; the Z-algorithm, as llama.cpp runs it."""
    n = len(back)
    counts = [0] * n
    last, lt, rt = n - 1, 0, 0
    for k in range(1, n):
        if k > rt:
            m = 0
            while m + k < n and back[m] == back[m + k]:
                m += 1
            counts[last - k] = min(m, limit)
            if m > 0:
                lt, rt = k, k + m - 1
        elif counts[last - (k - lt)] < rt - k + 1:
            counts[last - k] = min(counts[last - (k - lt)], limit)
        else:
            i = rt + 1
            while i < n and back[i] == back[i - k]:
                i += 1
            counts[last - k] = min(i - k, limit)
            lt, rt = k, i - 1
    return counts


def dry_penalties(last: Sequence[int], breakers: Breakers, *, multiplier: float, base: float,
                  allowed_length: int) -> dict[int, float]:
    """Token id -> the amount DRY takes from its logit after the context `last` (the window)."""
    n = len(last)
    if multiplier == 0 or base < 1 or n <= allowed_length:
        return {}
    limit = _repeat_limit(last, breakers)
    if limit < allowed_length:
        return {}
    back = list(reversed(last))
    counts = _repeat_counts(back, limit)
    longest: dict[int, int] = {}
    for i in range(n - 1):
        if counts[i] >= allowed_length:
            token = back[n - 2 - i]  # the token that followed that earlier occurrence
            longest[token] = max(longest.get(token, 0), counts[i])
    cap = int(FLOAT_MAX_LOG / math.log(base)) if base > 1.000001 else 0
    out = {}
    for token, length in longest.items():
        if () in breakers.get(token, ()):
            continue  # a whole breaker is never penalised
        exponent = length - allowed_length
        out[token] = multiplier * base ** (min(exponent, cap) if cap > 0 else exponent)
    return out
