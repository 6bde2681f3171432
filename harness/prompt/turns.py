"""Parse generated text into turns using a template's derived markers.

When the model runs past its end of turn it goes on writing the template's scaffolding and the
next turns itself: ``<|im_end|>\\n<|im_start|>user\\n...``. The parser walks the text, treats
every occurrence of a role's open marker as the start of that role's turn and every close
marker as its end; marker text is ``template``, text inside a turn belongs to its role, text
between turns is ``template``. Repeated closes, empty turns and markers missing their
whitespace (``<|im_end|><|im_start|>``) are all handled.

Where the opens share a shape (``<|im_start|>`` NAME ``\\n``), any name is read as a turn of that
name: ``user_agent`` is not ``user``, ``admin`` is ``admin`` (a bare ``<|im_start|>\\n`` opens an
``unnamed`` turn); a known name straight after a close (``<|im_end|>user\\n``) opens its turn. A
marker cut off at the end of the text is ``template``. Inside an assistant turn, thinking and
tool-call blocks (:mod:`harness.prompt.blocks`) are ``reasoning`` and ``tool_call``. Each turn
records whether it continues this conversation or starts a new one (a system turn past the
start begins a new conversation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.prompt.blocks import KNOWN, BlockMarkers
from harness.prompt.conversation import (
    ASSISTANT,
    REASONING,
    SYSTEM,
    TEMPLATE,
    TOOL_CALL,
    USER,
    attribution_role,
)
from harness.prompt.markers import TurnMarkers
from harness.prompt.segments import CONTENT, SCAFFOLD, Segment

_NEXT_ROLE = {USER: ASSISTANT, ASSISTANT: USER, SYSTEM: USER}
_NAME = r"[A-Za-z_][\w.\-]*"
_NAME_CHARS = re.compile(r"[\w.\-]*")
UNNAMED = "unnamed"  # the role of a turn whose open marker names no role
DELIMITER = "delimiter"  # kind of a block delimiter inside a turn (``<think>``)
SAME, NEW = "same", "new"


@dataclass(frozen=True)
class _Marker:
    text: str
    kind: str  # "open", "close", "block_open" or "block_close"
    role: str
    close: str = ""  # a block's close


@dataclass(frozen=True)
class Turn:
    """One turn found in generated text: its role, where its content lies, and whether it
    continues the conversation (``same``) or begins another (``new``)."""

    role: str
    start: int
    end: int
    conversation: str = SAME


@dataclass
class _State:
    role: str | None
    inner: str | None = None  # REASONING / TOOL_CALL inside an assistant turn
    close: str = ""  # what ends the inner block
    conversation: str = SAME


class TurnParser:
    """Splits generated text into role spans; reusable across calls (holds no text)."""

    def __init__(self, markers: TurnMarkers, extra_closes: Iterable[str] = (),
                 blocks: BlockMarkers | None = None):
        self._markers = markers
        self._blocks = blocks if blocks is not None else KNOWN
        table: dict[str, _Marker] = {}
        # Whitespace-only markers ("\n\n" closing a turn of plain text) are not markers here:
        # inside generated prose they are paragraph breaks far more often than turn ends.
        for role, text in markers.closes.items():
            for variant in (text, text.strip()):
                if variant.strip():
                    table.setdefault(variant, _Marker(variant, "close", role))
        for text in extra_closes:
            if text.strip():
                table.setdefault(text, _Marker(text, "close", ""))
        for role, text in markers.opens.items():
            for variant in (text, text.strip()):
                if variant.strip():  # an open wins over an equal close (Mistral's "[INST]")
                    table[variant] = _Marker(variant, "open", role)
        self._blocks_by_text: dict[str, list[_Marker]] = {}
        for block in self._blocks.blocks:
            self._blocks_by_text.setdefault(block.open, []).append(
                _Marker(block.open, "block_open", block.role, block.close))
            if block.close:
                self._blocks_by_text.setdefault(block.close, []).append(
                    _Marker(block.close, "block_close", block.role))
        self._table = table
        self._shape = _open_shape(markers)
        literals = sorted({*table, *self._blocks_by_text}, key=len, reverse=True)
        alternatives = [re.escape(t) for t in literals]
        if self._shape is not None:
            prefix, suffix, _ = self._shape
            ends = "|".join(re.escape(s) for s in dict.fromkeys((suffix, suffix.strip())) if s)
            alternatives.insert(0, f"(?P<shape>{re.escape(prefix)}(?:(?P<name>{_NAME})(?:{ends})?|(?:{ends})))")
        self._regex = re.compile("|".join(alternatives)) if alternatives else None
        self._names = self._shape[2] if self._shape else {}
        suffix = self._shape[1] if self._shape else ""
        self._after_close_open = (re.compile(f"(?P<name>{_NAME})(?:{re.escape(suffix)})") if suffix.strip()
                                  or suffix else None)
        self._partials = [t for t in literals if len(t.strip()) > 1] + \
                         ([self._shape[0]] if self._shape else [])
        self._literals = literals
        self._closes = [t for t, m in table.items() if m.kind == "close"] if self._after_close_open else []

    def start_role(self, writer: str | None, mode: str) -> str | None:
        """The role generated text starts in: the writer, or ``reasoning`` when the generation
        prompt leaves a thinking block open."""
        if writer == ASSISTANT and mode in ("reply", "prefill") and self._blocks.prompt_opens_reasoning:
            return REASONING
        return writer

    def _after_close(self, role: str | None) -> str | None:
        following = _NEXT_ROLE.get(role or "")
        if following and following in self._markers.opens and self._markers.opens[following] == "":
            return following
        return None

    def parse(self, text: str, start_role: str | None) -> list[Segment]:
        """Spans tiling `text`, starting inside a turn of `start_role` (None: between turns;
        ``reasoning``: an assistant turn whose thinking block is open)."""
        return self._walk(text, start_role)[0]

    def turns(self, text: str, start_role: str | None) -> list[Turn]:
        return self._walk(text, start_role)[1]

    def role_at_end(self, text: str, start_role: str | None) -> str:
        """The role the next generated character would belong to."""
        spans = self._walk(text, start_role, tail=False)[2]
        return spans.inner or spans.role or TEMPLATE

    def settled(self, text: str) -> int:
        """How much of `text` more text cannot reparse: where a marker may still be forming at
        its end begins (a marker's beginning, ``<|im_start|>ass`` whose role name may go on, a
        role name straight after a close), or the text's end."""
        cut = partial_start(text, self._literals)
        if self._shape is not None:
            at = text.rfind(self._shape[0])
            if at >= 0 and _NAME_CHARS.fullmatch(text, at + len(self._shape[0])):
                cut = min(cut, at)
        for close in self._closes:
            at = text.rfind(close)
            if at >= 0 and at + len(close) < len(text) and _NAME_CHARS.fullmatch(text, at + len(close)):
                cut = min(cut, at + len(close))
        return cut

    def _walk(self, text: str, start_role: str | None,
              tail: bool = True) -> tuple[list[Segment], list[Turn], _State]:
        spans: list[Segment] = []
        turns: list[Turn] = []
        state = _State(ASSISTANT, REASONING) if start_role == REASONING else _State(start_role)
        if start_role == REASONING:
            state.close = self._reasoning_close()
        turn_start = 0 if state.role else -1
        pos = 0

        def emit(end: int, role: str, kind: str) -> None:
            nonlocal pos
            if end > pos:
                spans.append(Segment(pos, end, role, kind))
            pos = max(pos, end)

        def end_turn(at: int) -> None:
            nonlocal turn_start
            if state.role and turn_start >= 0:
                turns.append(Turn(state.role, turn_start, at, state.conversation))
            turn_start = -1

        def open_turn(role: str, at: int) -> None:
            nonlocal turn_start
            if role == SYSTEM and (turns or turn_start >= 0 or start_role is not None):
                state.conversation = NEW  # a system prompt mid-stream: another conversation
            state.role, state.inner, turn_start = role, None, at

        search_at = 0
        while self._regex is not None and (match := self._regex.search(text, search_at)):
            start, end = match.span()
            search_at = max(end, start + 1)
            here = self._classify(match, state)
            if here is None:
                continue  # a block delimiter outside an assistant turn: plain text
            content_role = state.inner or state.role
            emit(start, content_role or TEMPLATE, CONTENT if content_role else SCAFFOLD)
            if here.kind == "block_open":
                emit(end, TOOL_CALL if here.role == TOOL_CALL else TEMPLATE,
                     CONTENT if here.role == TOOL_CALL else DELIMITER)
                state.inner, state.close = here.role, here.close
                continue
            if here.kind == "block_close":
                emit(end, TOOL_CALL if here.role == TOOL_CALL else TEMPLATE,
                     CONTENT if here.role == TOOL_CALL else DELIMITER)
                state.inner, state.close = None, ""
                continue
            emit(end, TEMPLATE, SCAFFOLD)
            end_turn(start)
            if here.kind == "open":
                open_turn(here.role, end)
                continue
            following = self._after_close(state.role)
            state.role, state.inner = None, None
            malformed = self._after_close_open.match(text, end) if self._after_close_open else None
            if malformed and malformed.group("name") in self._names:
                emit(malformed.end(), TEMPLATE, SCAFFOLD)
                open_turn(self._names[malformed.group("name")], malformed.end())
                search_at = malformed.end()
            elif following:
                open_turn(following, end)
        cut = self._cut_marker(text, pos) if tail else len(text)
        content_role = state.inner or state.role
        emit(cut, content_role or TEMPLATE, CONTENT if content_role else SCAFFOLD)
        emit(len(text), TEMPLATE, SCAFFOLD)
        end_turn(cut)
        return spans, turns, state

    def _classify(self, match: re.Match[str], state: _State) -> _Marker | None:
        found = match.group(0)
        if match.group("shape") if self._shape else None:
            if found in self._table and found.strip() == found:
                return self._table[found]
            name = match.group("name")
            if name is None:
                return _Marker(found, "open", UNNAMED)
            if found in self._table and self._table[found].kind == "close":
                return self._table[found]
            return _Marker(found, "open", self._names.get(name, attribution_role(name)))
        for block in self._blocks_by_text.get(found, ()):
            if block.kind == "block_open" and state.role == ASSISTANT and state.inner is None:
                return block
            if block.kind == "block_close" and state.inner == block.role and state.close == found:
                return block
        if found in self._table:
            if state.inner and self._table[found].kind == "close" and found == state.close:
                return None
            return self._table[found]
        return None

    def _reasoning_close(self) -> str:
        for block in self._blocks.blocks:
            if block.role == REASONING:
                return block.close
        return ""

    def _cut_marker(self, text: str, pos: int) -> int:
        """Where a marker cut off at the end of the text begins (the text's end if none)."""
        for size in range(min(len(text) - pos, max((len(p) for p in self._partials), default=0)), 1, -1):
            tail = text[len(text) - size:]
            if not tail[0].isalnum() and not tail[0].isspace() and any(
                    p.startswith(tail) and p != tail for p in self._partials):
                return len(text) - size
        return len(text)


def partial_start(text: str, literals: Iterable[str]) -> int:
    """Where the longest end of `text` that is a proper beginning of one of `literals` starts
    (the text's end when none is)."""
    literals = [t for t in literals if t]
    longest = max((len(t) for t in literals), default=0)
    for start in range(max(0, len(text) - longest + 1), len(text)):
        tail = text[start:]
        if any(len(t) > len(tail) and t.startswith(tail) for t in literals):
            return start
    return len(text)


def _open_shape(markers: TurnMarkers) -> tuple[str, str, dict[str, str]] | None:
    """``(prefix, suffix, name -> role)`` when every open is prefix + a role name + suffix."""
    items = [(role, text) for role, text in markers.opens.items() if text.strip()]
    if len(items) < 2:
        return None
    texts = [t for _, t in items]
    prefix = os.path.commonprefix(texts)
    suffix = os.path.commonprefix([t[::-1] for t in texts])[::-1]
    names: dict[str, str] = {}
    for role, text in items:
        name = text[len(prefix): len(text) - len(suffix)]
        if not re.fullmatch(_NAME, name):
            return None
        names[name] = role
    if len(prefix.strip()) < 2:
        return None
    return prefix, suffix, names


def turn_roles(writer: str | None) -> set[str | None]:
    """The roles text inside `writer`'s own turn may have (an assistant's reasoning, tool calls)."""
    return {writer, REASONING, TOOL_CALL} if writer in (ASSISTANT, REASONING) else {writer}


def writer_turn(spans: list[Segment], text: str, writer: str | None) -> tuple[str, bool]:
    """The text of the turn the writer was in at the start, and whether the text went past it."""
    inside = turn_roles(writer)
    out = []
    for span in spans:
        if span.role not in inside and span.kind != DELIMITER:
            return "".join(out), True
        out.append(text[span.start:span.end])
    return "".join(out), False
