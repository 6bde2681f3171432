"""Lint rules that read the model rather than the template (``lint --model``):

  L201 role-like tokens in the vocabulary that look alike (``<|im_start|>`` and a homoglyph of it)
  L202 an end-of-turn id the GGUF declares (EOT, EOM) that is not in the end-of-generation set
  L203 the template differs from the ``tokenizer_config.json`` given with ``--against-config``

Tokens are read through the backend's ``piece``/``is_special`` (any :class:`Tokenizer`), so the
fake backend tests the logic and the real vocabularies test it for false alarms.
"""

from __future__ import annotations

import json
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import CommandError
from harness.lab.lint.findings import Finding
from harness.lab.lint.static import hidden

MAX_CONFIG_BYTES = 64 << 20
_ROLE_LIKE = re.compile(r"<[|｜]?[^<>\s]{1,48}[|｜]?>|\[/?[^\[\]\s]{2,24}\]")
# letters of other scripts drawn like Latin ones (Unicode's confusables, the ones seen in spoofing)
_HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M",
    "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X", "α": "a", "ο": "o", "ρ": "p", "ν": "v",
    "ι": "i", "κ": "k", "τ": "t", "υ": "u", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I",
    "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ǀ": "|", "│": "|",
    "∣": "|", "ı": "i", "ℓ": "l", "▁": "_",
})
_DECLARED_END = ("eot", "eom")  # tokenizer.ggml.<name>_token_id


def skeleton(text: str) -> str:
    """What `text` looks like: compatibility forms folded, invisibles dropped, homoglyphs mapped."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if not hidden(ch)).translate(_HOMOGLYPHS)


def confusable_tokens(tok: Any) -> list[Finding]:
    """L201: distinct role-like tokens of the vocabulary with the same skeleton."""
    groups: dict[str, dict[str, int]] = {}
    for token in range(tok.info.n_vocab):
        text = tok.piece(token).decode("utf-8", "replace")
        if _ROLE_LIKE.fullmatch(text):
            groups.setdefault(skeleton(text), {}).setdefault(text, token)
    out = []
    for members in groups.values():
        if len(members) > 1:
            shown = " and ".join(f"{ascii(text)} (id {i}, {'special' if tok.is_special(i) else 'plain text'})"
                                 for text, i in sorted(members.items(), key=lambda m: m[1]))
            out.append(Finding("L201", "warning", f"role-like tokens look alike: {shown}", "vocabulary"))
    return out


def end_of_turn_findings(tok: Any, declared: Mapping[str, int | None]) -> list[Finding]:
    """L202: a declared end-of-turn id (``{"eot": id, ...}``) that is in the vocabulary but not EOG."""
    out = []
    for name, token in declared.items():
        if token is None or not 0 <= token < tok.info.n_vocab or token in tok.info.eog_ids:
            continue  # out of range is L014's
        text = tok.piece(token).decode("utf-8", "replace")
        out.append(Finding("L202", "error", f"the GGUF declares {ascii(text)} (id {token}) as its {name.upper()} "
                           "token, but it is not an end-of-generation token: generation runs past it",
                           "metadata"))
    return out


def declared_end_ids(scalars: Mapping[str, object]) -> dict[str, int | None]:
    """The end-of-turn ids a GGUF header declares (its ``tokenizer.ggml.*_token_id`` keys)."""
    out: dict[str, int | None] = {}
    for name in _DECLARED_END:
        value = scalars.get(f"tokenizer.ggml.{name}_token_id")
        out[name] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return out


def config_templates(path: str) -> dict[str, str]:
    """The chat templates of a ``tokenizer_config.json`` by name (the main one: ``default``)."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CommandError("--against-config is not a regular file", where=where)
            if info.st_size > MAX_CONFIG_BYTES:
                raise CommandError(f"--against-config is {info.st_size:,} bytes, over {MAX_CONFIG_BYTES:,}",
                                   where=where)
            data = json.loads(f.read().decode("utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read --against-config: {exc.strerror or exc}", where=where) from None
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CommandError(f"--against-config is not JSON: {type(exc).__name__}", where=where) from None
    entries = data.get("chat_template") if isinstance(data, dict) else None
    if isinstance(entries, str):
        return {"default": entries}
    if isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                         and isinstance(e.get("template"), str) for e in entries):
        return {e["name"]: e["template"] for e in entries}
    raise CommandError("--against-config has no chat_template (a string or a list of {name, template})",
                       where=where, hint="newer models ship chat_template.jinja: compare that file instead")


def differs_from_config(source: str, expected: str, config: str, name: str) -> list[Finding]:
    """L203 at the first line where `source` and the config's template `name` differ."""
    if source == expected:
        return []
    ours, theirs = source.splitlines(), expected.splitlines()
    line = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs)))
    a, b = (ours[line] if line < len(ours) else ""), (theirs[line] if line < len(theirs) else "")
    column = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    what = "only in line endings or trailing newlines" if ours == theirs else f"from line {line + 1}"
    return [Finding("L203", "warning", f"differs from chat_template {name!r} of {Path(config).name} {what}",
                    "config", line + 1, column + 1)]
