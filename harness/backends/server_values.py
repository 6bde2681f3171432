"""What a server's numbers must be before harness computes anything from them.

A server is data. A log-probability is a finite number no greater than 0 (a rounding error of
``LOGPROB_SLACK`` above 0 is read as 0), a probability lies in [0, 1], a rank is an integer of 1
or more, and a token id an integer in [0, ``MAX_TOKEN_ID``). Anything else — ``Infinity``, a
positive log-probability, ``true``, a rank of ``"1"`` — is one :class:`RemoteError` naming the
URL and the field, never a statistic (a surprisal of -72 bits, a perplexity of 2e-22).
"""

from __future__ import annotations

import math
from typing import Any

from harness.errors import RemoteError

LOGPROB_SLACK = 1e-4  # servers round; exp(1e-4) - 1 is far below any probability we print
MAX_TOKEN_ID = 2**31  # llama.cpp's token ids are int32
HINT = "the server sent values no model produces; is this an inference server of the kind named?"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def logprob(value: Any, *, field: str, url: str) -> float:
    """A log-probability (nats) as the probability it stands for."""
    number = _number(value)
    if number is None or not math.isfinite(number) or number > LOGPROB_SLACK:
        raise RemoteError(f"field '{field}': a log-probability must be a finite number <= 0, got {value!r:.40}",
                          where=url, hint=HINT)
    return math.exp(min(number, 0.0))


def prob(value: Any, *, field: str, url: str) -> float:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise RemoteError(f"field '{field}': a probability must be a number in [0, 1], got {value!r:.40}",
                          where=url, hint=HINT)
    return number


def rank(value: Any, *, field: str, url: str) -> int | None:
    """A rank (1 = most probable); None when the server gives none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RemoteError(f"field '{field}': a rank must be an integer >= 1, got {value!r:.40}", where=url, hint=HINT)
    return value


def token_id(value: Any, *, field: str, url: str, key: bool = False) -> int:
    """A token id: an integer; with `key`, a JSON object key (a string of digits)."""
    if key and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_TOKEN_ID:
        raise RemoteError(f"field '{field}': a token id must be an integer in [0, {MAX_TOKEN_ID}), "
                          f"got {value!r:.40}", where=url, hint=HINT)
    return value
