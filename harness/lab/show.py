"""A prompt as the model sees it, for a terminal: token boundaries, roles, special tokens.

ANSI styling only (no terminal library): each token is coloured by role, special tokens are in
reverse video, and alternate tokens are underlined so boundaries show; newlines are drawn as ↵.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.untrusted import visible

ROLE_COLOURS = {"system": "33", "user": "32", "assistant": "36", "template": "90"}


def _visible(piece: str) -> str:
    return visible(piece).replace("\n", "↵\n").replace("\t", "→")


def show_tokens(tokens: Sequence[tuple[str, str, bool]], colour: bool = True) -> str:
    """(piece, role, special) triples -> one styled string."""
    out = []
    for i, (piece, role, special) in enumerate(tokens):
        text = _visible(piece)
        if not colour:
            out.append(f"⟦{text}⟧" if special else text)
            continue
        codes = [ROLE_COLOURS.get(role, "0")]
        codes.append("7" if special else ("4" if i % 2 else "24"))
        out.append(f"\x1b[{';'.join(codes)}m{text}\x1b[0m")
    return "".join(out)


def show_segments(prompt: str, segments: Sequence[tuple[int, int, str]], colour: bool = True) -> str:
    """A prompt without a tokenizer: spans coloured by role."""
    if not colour:
        return _visible(prompt)
    return "".join(f"\x1b[{ROLE_COLOURS.get(role, '0')}m{_visible(prompt[a:b])}\x1b[0m"
                   for a, b, role in segments)


def token_table(rows: Sequence[tuple[int, str, str, bool]]) -> str:
    """id, piece, role per token, one per line."""
    return "\n".join(f"{i:5d} {tid:7d}  {role:9} {'special ' if special else ''}{piece!r}"
                     for i, (tid, piece, role, special) in enumerate(rows))
