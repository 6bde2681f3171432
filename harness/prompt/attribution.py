"""Give every token a role from character spans (prompt segments or parsed generated turns).

Tokens are located by their pieces' UTF-8 bytes; a token takes the role that covers most of
its characters (ties go to the earlier span). Tokens the text does not contain (a BOS the
tokenizer added) are ``template``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from harness.prompt.conversation import TEMPLATE
from harness.prompt.segments import Segment

_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 bytes that do not start a character


def char_offsets(pieces: Sequence[bytes], text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each piece in `text`, pieces laid end to end.

    Offsets are clamped to the text, so a piece the text does not hold gets an empty span; an
    offset inside a character counts as that character's start. Characters are counted between
    successive offsets with ``bytes.translate`` (C speed), so the work is linear in the text
    with no Python step per character.
    """
    encoded = text.encode("utf-8")
    if len(encoded) == len(text):  # ASCII: bytes are characters
        ends = [0]
        for piece in pieces:
            ends.append(ends[-1] + len(piece))
        return [(min(a, len(text)), min(b, len(text))) for a, b in zip(ends, ends[1:], strict=False)]
    counted, chars = 0, 0  # characters starting in encoded[:counted]

    def to_char(offset: int) -> int:
        nonlocal counted, chars
        chars += len(encoded[counted:offset].translate(None, _CONTINUATION))
        counted = offset
        inside = offset < len(encoded) and 0x80 <= encoded[offset] < 0xC0
        return chars - 1 if inside else chars

    offsets = []
    pos = 0
    for piece in pieces:
        start = to_char(min(pos, len(encoded)))
        pos += len(piece)
        offsets.append((start, to_char(min(pos, len(encoded)))))
    return offsets


def roles_for_spans(offsets: Sequence[tuple[int, int]], segments: Sequence[Segment]) -> list[str]:
    """The majority role of each (start, end) character span."""
    starts = [s.start for s in segments]
    roles = []
    for start, end in offsets:
        if end <= start:
            i = bisect.bisect_right(starts, start) - 1
            roles.append(segments[i].role if 0 <= i < len(segments) and start < segments[i].end else TEMPLATE)
            continue
        best, best_len = TEMPLATE, 0
        i = max(bisect.bisect_right(starts, start) - 1, 0)
        while i < len(segments) and segments[i].start < end:
            seg = segments[i]
            overlap = min(end, seg.end) - max(start, seg.start)
            if overlap > best_len:
                best, best_len = seg.role, overlap
            i += 1
        roles.append(best)
    return roles
