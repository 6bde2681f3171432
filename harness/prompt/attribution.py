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


def char_offsets(pieces: Sequence[bytes], text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each piece in `text`, pieces laid end to end.

    Offsets are clamped to the text, so a piece the text does not hold gets an empty span.
    """
    encoded = text.encode("utf-8")
    # byte offset -> char offset, through the prefix lengths of each char
    boundaries = [0]
    for ch in text:
        boundaries.append(boundaries[-1] + len(ch.encode("utf-8")))
    offsets = []
    pos = 0
    for piece in pieces:
        start = min(pos, len(encoded))
        pos += len(piece)
        end = min(pos, len(encoded))
        offsets.append((_to_char(boundaries, start), _to_char(boundaries, end)))
    return offsets


def _to_char(boundaries: list[int], byte_offset: int) -> int:
    return bisect.bisect_right(boundaries, byte_offset) - 1


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
