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
from dataclasses import dataclass, replace

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
from harness.prompt.scan import Scanner, border_chain, suffix_prefixes
from harness.prompt.segments import CONTENT, SCAFFOLD, Segment

_NEXT_ROLE = {USER: ASSISTANT, ASSISTANT: USER, SYSTEM: USER}
MAX_NAME = 64  # characters of a role name in an open marker (<|im_start|>NAME)
_NAME = rf"[A-Za-z_][\w.\-]{{0,{MAX_NAME - 1}}}"
_NAME_RE = re.compile(_NAME)
_NAME_CHARS = re.compile(rf"[\w.\-]{{0,{MAX_NAME}}}")
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


@dataclass(frozen=True)
class _Hit:
    """A marker found in the text: where, its text, and for the open shape the name it read."""

    start: int
    end: int
    text: str
    shape: bool = False
    name: str | None = None


class TurnParser:
    """Splits generated text into role spans; reusable across calls (holds no text).

    Markers are found by :class:`harness.prompt.scan.Scanner` (literal search, one pass per
    marker), not by a regex alternation, so a template with giant markers costs time linear in
    their length; a name in the open shape is at most ``MAX_NAME`` characters."""

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
        self._literals = {*table, *self._blocks_by_text} - {""}
        prefix, suffix = (self._shape[0], self._shape[1]) if self._shape else ("", "")
        self._prefix = prefix
        self.searched = frozenset({*self._literals, *([prefix] if prefix else [])})  # what a Scanner looks for
        self._ends = [e for e in dict.fromkeys((suffix, suffix.strip())) if e]
        self._suffix = suffix
        self._names = self._shape[2] if self._shape else {}
        literals = sorted(self._literals, key=len, reverse=True)
        self._partials = [(t, border_chain(t)) for t in [*[t for t in literals if len(t.strip()) > 1],
                                                         *([prefix] if prefix else [])]]
        # the longest stretch of text one marker decision reads (a marker, a name, the open after a close)
        self.reach = max((len(t) for t in self._literals), default=0) + len(prefix) + 2 * (MAX_NAME + len(suffix)) + 2
        self._closes = [t for t, m in table.items() if m.kind == "close"] if suffix else []

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
        walk = _Walk(self, start_role, record=False)
        walk.run(text, Scanner(text, self.searched))
        return walk.role()

    def tracker(self, start_role: str | None, opened: str = "") -> RoleTracker:
        """The role at the end of text that grows (generated text after `opened`), kept up to
        date in time linear in the text."""
        return RoleTracker(self, start_role, opened)

    def settled(self, text: str) -> int:
        """How much of `text` more text cannot reparse: where a marker may still be forming at
        its end begins (a marker's beginning, ``<|im_start|>ass`` whose role name may go on, a
        role name straight after a close), or the text's end. Reads only the last `reach`
        characters."""
        cut = partial_start(text, self._literals)
        window = max(0, len(text) - self.reach)
        if self._prefix:
            at = text.rfind(self._prefix, window)
            if at >= 0 and _NAME_CHARS.fullmatch(text, at + len(self._prefix)):
                cut = min(cut, at)
        for close in self._closes:
            at = text.rfind(close, window)
            if at >= 0 and at + len(close) < len(text) and _NAME_CHARS.fullmatch(text, at + len(close)):
                cut = min(cut, at + len(close))
        return cut

    def _walk(self, text: str, start_role: str | None) -> tuple[list[Segment], list[Turn], _State]:
        walk = _Walk(self, start_role, record=True)
        walk.run(text, Scanner(text, self.searched))
        return walk.finish(text, self._cut_marker(text, walk.pos)), walk.turns, walk.state

    def next_hit(self, scan: Scanner, pos: int) -> _Hit | None:
        """The earliest marker at or after `pos`: the open shape first, then the longest literal."""
        text = scan.text
        while (found := scan.find(pos)) is not None:
            at, texts = found
            if self._prefix and self._prefix in texts:
                hit = self._shape_at(text, at)
                if hit is not None:
                    return hit
            literal = next((t for t in texts if t in self._literals), None)
            if literal is not None:
                return _Hit(at, at + len(literal), literal)
            pos = at + 1
        return None

    def _shape_at(self, text: str, at: int) -> _Hit | None:
        """prefix NAME [suffix], or prefix suffix (an unnamed open), at `at` (the prefix is there)."""
        after = at + len(self._prefix)
        name = _NAME_RE.match(text, after)
        if name is not None:
            end = name.end() + (self._end_at(text, name.end()) or 0)
            return _Hit(at, end, text[at:end], True, name.group())
        tail = self._end_at(text, after)
        return None if tail is None else _Hit(at, after + tail, text[at:after + tail], True, None)

    def _end_at(self, text: str, at: int) -> int | None:
        if not self._ends:
            return 0
        return next((len(e) for e in self._ends if text.startswith(e, at)), None)

    def open_after_close(self, text: str, at: int) -> tuple[str, int] | None:
        """A known name and its suffix straight after a close (``<|im_end|>user\n``): (role, end)."""
        if not self._suffix:
            return None
        name = _NAME_RE.match(text, at)
        if name is None:
            return None
        for end in range(name.end(), at, -1):  # the longest name the suffix follows
            if text.startswith(self._suffix, end):
                word = text[at:end]
                return (self._names[word], end + len(self._suffix)) if word in self._names else None
        return None

    def classify(self, hit: _Hit, state: _State) -> _Marker | None:
        found = hit.text
        if hit.shape:
            if found in self._table and found.strip() == found:
                return self._table[found]
            if hit.name is None:
                return _Marker(found, "open", UNNAMED)
            if found in self._table and self._table[found].kind == "close":
                return self._table[found]
            return _Marker(found, "open", self._names.get(hit.name, attribution_role(hit.name)))
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

    def reasoning_close(self) -> str:
        for block in self._blocks.blocks:
            if block.role == REASONING:
                return block.close
        return ""

    def _cut_marker(self, text: str, pos: int) -> int:
        """Where a marker cut off at the end of the text begins (the text's end if none): the
        longest tail, from a character that is neither a letter, a digit nor a space, that
        begins some marker without being all of it."""
        best = len(text)
        for partial, fail in self._partials:
            for size in suffix_prefixes(text, max(pos, len(text) - len(partial) + 1), partial, fail):
                start = len(text) - size
                if size >= 2 and not text[start].isalnum() and not text[start].isspace():
                    best = min(best, start)
                    break
        return best


class _Walk:
    """The parser's walk over one text: its state, and (when recording) spans and turns."""

    def __init__(self, parser: TurnParser, start_role: str | None, *, record: bool):
        self.parser, self.record, self.start_role = parser, record, start_role
        self.state = _State(ASSISTANT, REASONING) if start_role == REASONING else _State(start_role)
        if start_role == REASONING:
            self.state.close = parser.reasoning_close()
        self.spans: list[Segment] = []
        self.turns: list[Turn] = []
        self.turn_start = 0 if self.state.role else -1
        self.pos = 0  # where the next span starts
        self.search_at = 0  # where the next marker is looked for

    def copy(self) -> _Walk:
        other = _Walk.__new__(_Walk)
        other.__dict__.update(self.__dict__)
        other.state = replace(self.state)
        other.spans, other.turns = [], []
        return other

    def role(self) -> str:
        return self.state.inner or self.state.role or TEMPLATE

    def shift(self, by: int) -> None:
        """Positions moved back by `by` (the text before them was dropped)."""
        self.pos -= by
        self.search_at -= by
        self.turn_start = self.turn_start - by if self.turn_start >= 0 else -1

    def _emit(self, end: int, role: str, kind: str) -> None:
        if self.record and end > self.pos:
            self.spans.append(Segment(self.pos, end, role, kind))
        self.pos = max(self.pos, end)

    def _end_turn(self, at: int) -> None:
        if self.record and self.state.role and self.turn_start >= 0:
            self.turns.append(Turn(self.state.role, self.turn_start, at, self.state.conversation))
        self.turn_start = -1

    def _open_turn(self, role: str, at: int) -> None:
        if role == SYSTEM and (self.turns or self.turn_start >= 0 or self.start_role is not None):
            self.state.conversation = NEW  # a system prompt mid-stream: another conversation
        self.state.role, self.state.inner, self.turn_start = role, None, at

    def run(self, text: str, scan: Scanner, limit: int | None = None) -> None:
        """Take the markers from `search_at` on; with `limit`, only those starting before it (a
        marker nearer the end may still grow), and `search_at` moves up to `limit`."""
        parser, state = self.parser, self.state
        while (hit := parser.next_hit(scan, self.search_at)) is not None:
            if limit is not None and hit.start >= limit:
                break
            self.search_at = max(hit.end, hit.start + 1)
            here = parser.classify(hit, state)
            if here is None:
                continue  # a block delimiter outside an assistant turn: plain text
            content_role = state.inner or state.role
            self._emit(hit.start, content_role or TEMPLATE, CONTENT if content_role else SCAFFOLD)
            if here.kind in ("block_open", "block_close"):
                self._emit(hit.end, TOOL_CALL if here.role == TOOL_CALL else TEMPLATE,
                           CONTENT if here.role == TOOL_CALL else DELIMITER)
                state.inner, state.close = (here.role, here.close) if here.kind == "block_open" else (None, "")
                continue
            self._emit(hit.end, TEMPLATE, SCAFFOLD)
            self._end_turn(hit.start)
            if here.kind == "open":
                self._open_turn(here.role, hit.end)
                continue
            following = parser._after_close(state.role)
            state.role, state.inner = None, None
            named = parser.open_after_close(text, hit.end)
            if named is not None:
                self._emit(named[1], TEMPLATE, SCAFFOLD)
                self._open_turn(named[0], named[1])
                self.search_at = named[1]
            elif following:
                self._open_turn(following, hit.end)
        if limit is not None:
            self.search_at = max(self.search_at, limit)

    def finish(self, text: str, cut: int) -> list[Segment]:
        content_role = self.state.inner or self.state.role
        self._emit(cut, content_role or TEMPLATE, CONTENT if content_role else SCAFFOLD)
        self._emit(len(text), TEMPLATE, SCAFFOLD)
        self._end_turn(cut)
        return self.spans


class RoleTracker:
    """The role at the end of a growing text (the open turn plus what was generated so far).

    Markers that start more than the parser's `reach` before the end cannot change with more
    text: they are taken once and the text before them dropped; only the last `reach`
    characters are walked again per step. Linear in the text, whatever the markers."""

    def __init__(self, parser: TurnParser, start_role: str | None, opened: str = ""):
        self._parser, self._start, self._opened = parser, start_role, opened
        self._walk = _Walk(parser, start_role, record=False)
        self._text = opened  # the text from the walk's origin on
        self._seen = 0  # characters of generated text taken in

    def role(self, generated: str) -> str:
        """The role after `generated` (the text generated so far: it only grows, or is cut)."""
        if len(generated) < self._seen:  # cut at a stop string: start over
            self.__init__(self._parser, self._start, self._opened)  # type: ignore[misc]
        self._text += generated[self._seen:]
        self._seen = len(generated)
        limit = len(self._text) - self._parser.reach
        if limit > self._walk.search_at:
            self._walk.run(self._text, Scanner(self._text, self._parser.searched), limit)
        drop = min(self._walk.search_at, self._walk.pos)
        if drop > 0:
            self._text = self._text[drop:]
            self._walk.shift(drop)
        probe = self._walk.copy()
        probe.run(self._text, Scanner(self._text, self._parser.searched))
        return probe.role()


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
