"""Issue 26, finding 4: work bounded by the input's size, linearly. Each input here cost the old
code from 20 s to minutes (a regex alternation of giant markers, a rescan of the text per block,
per token or per match, difflib on megabytes); each must now finish far inside a generous bound.
The growth figures (x10 input -> about x10 time) are measured by bench/stress_files.py --classes,
not asserted here."""

from __future__ import annotations

import time

from harness.backends.openai_compat import OpenAICompatEngine
from harness.generation.remote_workbench import RemoteWorkbench
from harness.generation.settings import SamplingParams
from harness.lab.diffing import diff_sequences
from harness.prompt.blocks import split_reasoning
from harness.prompt.conversation import ASSISTANT, REASONING, USER, Conversation
from harness.prompt.markers import TurnMarkers
from harness.prompt.response import parse_response
from harness.prompt.segments import CONTENT, Segment
from harness.prompt.templates import load_template
from harness.prompt.turns import TurnParser
from tests.support.hostile_server import Hostile, Serve

BOUND = 20.0  # seconds; the old code took 20 s to several minutes on each (measured: > 60 s)
CHATML = TurnMarkers(opens={USER: "<|im_start|>user\n", ASSISTANT: "<|im_start|>assistant\n"},
                     closes={USER: "<|im_end|>\n", ASSISTANT: "<|im_end|>\n"})


def _timed(work) -> tuple[object, float]:
    start = time.perf_counter()
    out = work()
    return out, time.perf_counter() - start


def test_giant_markers_compile_and_match_in_linear_time():
    big = "x" * 400_000  # scaffold a template writes only when probed
    markers = TurnMarkers(opens={USER: "<u>" + big, ASSISTANT: "<a>" + big + "y"}, closes={USER: "</u>", ASSISTANT: "</a>"})
    text = "hello</a><u>" + big + "question</u><a>" + big + "yanswer"
    spans, seconds = _timed(lambda: TurnParser(markers).parse(text, ASSISTANT))
    assert seconds < BOUND
    roles = [(s.role, text[s.start:s.end]) for s in spans if s.kind == CONTENT]
    assert roles == [(ASSISTANT, "hello"), (USER, "question"), (ASSISTANT, "answer")]


def test_sixty_thousand_think_blocks_split_in_one_pass():
    text = "<think>why</think>so " * 60_000
    pieces, seconds = _timed(lambda: split_reasoning(text, [Segment(0, len(text), ASSISTANT, CONTENT)]))
    assert seconds < BOUND
    assert sum(p.role == REASONING for p in pieces) == 60_000
    message, seconds = _timed(lambda: parse_response(text))
    assert seconds < BOUND and message.content.count("so") == 60_000


class BigTokens(Hostile):
    def completion(self):  # 80 tokens of 300 KB each
        for _ in range(80):
            self.event(self.token("a" * 300_000))


def test_the_streamed_role_is_updated_incrementally():
    """The role of the text so far was re-parsed from the start on every token: 54 s and 1.2 GB
    for 80 tokens of 300 KB from a server."""
    with Serve(BigTokens) as server:
        bench = RemoteWorkbench(OpenAICompatEngine(server.url), load_template("chatml"))
        gen, seconds = _timed(lambda: bench.generate(bench.plan(Conversation.of((USER, "hi"))),
                                                     SamplingParams(max_tokens=80, eos="ban")))
    assert seconds < BOUND and len(gen.tokens) == 80 and {t.role for t in gen.tokens} == {ASSISTANT}


def test_the_role_tracker_agrees_with_a_full_parse_token_by_token():
    parser = TurnParser(CHATML)
    pieces = ["Hi", " <|im", "_end|>", "\n<|im_", "start|>us", "er\nyo", "<think>", "hm</th", "ink>ok"]
    tracker, text = parser.tracker(ASSISTANT), ""
    for piece in pieces:
        text += piece
        assert tracker.role(text) == parser.role_at_end(text, ASSISTANT), text


def test_parse_response_is_linear_and_depth_limited():
    text = "<tool_call>" * 60_000 + "x" * 600_000
    message, seconds = _timed(lambda: parse_response(text))
    assert seconds < BOUND and "x" * 1000 in message.content
    deep = "<tool_call>" + "[" * 50_000 + "]" * 50_000 + "</tool_call>"
    message = parse_response(deep)  # no RecursionError: too deep is not a call
    assert not message.extra.get("tool_calls")


def test_diff_of_megabyte_renderings_is_bounded():
    a = "".join(f"<|im_start|>user\nline {i}<|im_end|>\n" for i in range(150_000))  # 4.6 MB
    b = a.replace("line 1", "LINE 1").replace("line 9", "Line 9")
    changes, seconds = _timed(lambda: diff_sequences(a, b))
    assert seconds < BOUND and changes
    rebuilt, at = [], 0
    for change in changes:  # the changes still turn a into b
        rebuilt += [a[at:change.a_start], change.b_text]
        at = change.a_end
    assert "".join(rebuilt) + a[at:] == b
