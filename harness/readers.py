"""What the user hands harness as files or option strings, read into values: messages files,
``KEY=JSON`` template variables and ``TOKEN=VALUE`` logit biases. Every failure is a
HarnessError naming the input; nothing here prints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import CommandError, MessagesError
from harness.untrusted import check_text


def parse_vars(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--var '{item}': expected KEY=JSON")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw  # a bare word is taken as a string
        except RecursionError:
            raise CommandError(f"--var {key}: nested too deeply", hint="flatten the value") from None
        check_text([key, out[key]], error=CommandError, where=None, what=f"--var {key}")
    return out


def parse_bias(items: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.rpartition("=")
        try:
            out[key] = float(raw)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise CommandError(f"--bias '{item}': expected TOKEN=VALUE (VALUE a number or -inf)")
    return out


def read_messages(path: str):
    from harness.prompt.conversation import parse_messages

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MessagesError(f"cannot read messages: {exc.__class__.__name__}", where=path) from None
    return parse_messages(text, where=path)
