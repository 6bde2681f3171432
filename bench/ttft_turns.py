"""Time to first token as a conversation grows: KV reuse of the unchanged prefix.

Issue 6's target: time to first token at turn 20 <= 1.5 x that at turn 2, for equal-sized
turns. One ``Workbench`` plays a conversation of equal-sized user turns; each turn asks for a
reply (``max_tokens`` small, end of turn banned so every reply is as long) and the reply is
added as the assistant message, as the REPL does. Time to first token = from the call to the
first streamed token: render, tokenize, evaluate what the cache does not hold, sample.

In the same run, each turn is also timed *cold* (``evaluator.forget()`` first: the whole prompt
evaluated and scored again), which is what the turn would cost without reuse.

    python bench/ttft_turns.py [--model smollm2|gemma3-270m] [--turns 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from harness.generation.settings import EOS_BAN, SamplingParams
from harness.generation.workbench import Workbench
from harness.models.registry import open_backend
from harness.prompt.conversation import ASSISTANT, USER, Conversation
from harness.prompt.modes import REPLY
from harness.prompt.templates import load_template

TEMPLATES = {"smollm2": "gguf", "gemma3-270m": "chatml"}


def user_text(turn: int) -> str:
    return (f"Turn {turn:02d}: tell me one more fact about the lighthouse keeper, the storm, "
            f"the ship called Meridian and the village on the cliff, in a single sentence.")


def first_token_seconds(bench: Workbench, conv: Conversation, params: SamplingParams) -> tuple[float, str, int]:
    """(seconds to the first streamed token, the reply text, prompt tokens)."""
    t0 = time.perf_counter()
    first: list[float] = []
    plan = bench.plan(conv, REPLY)
    gen = bench.generate(plan, params, on_token=lambda e: first or first.append(time.perf_counter()))
    return (first[0] if first else time.perf_counter()) - t0, gen.text, len(gen.prompt_tokens)


def run(name: str, turns: int, threads: int, reply_tokens: int) -> None:
    backend = open_backend(name, n_ctx=8192, n_threads=threads)
    template = load_template(TEMPLATES[name], embedded=backend.info.chat_template, model_name=name)
    bench = Workbench(backend, template)
    params = SamplingParams(temperature=0.0, max_tokens=reply_tokens, eos=EOS_BAN)
    conv = Conversation()
    rows = []
    for turn in range(1, turns + 1):
        conv = conv.append(USER, user_text(turn))
        warm, text, n_prompt = first_token_seconds(bench, conv, params)
        bench.evaluator.forget()
        cold, _, _ = first_token_seconds(bench, conv, params)
        # the cache now holds this turn's prompt and reply, as after the warm call
        conv = conv.append(ASSISTANT, text)
        rows.append((turn, n_prompt, warm, cold))
    print(f"{name}: {turns} turns, reply {reply_tokens} tokens, {threads} threads, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"  {'turn':>4} {'prompt tok':>10} {'TTFT reuse ms':>14} {'TTFT cold ms':>13}")
    for turn, n, warm, cold in rows:
        if turn in (1, 2, 5, 10, 15, 20) or turn == turns:
            print(f"  {turn:>4} {n:>10} {warm * 1000:>14.1f} {cold * 1000:>13.1f}")
    t2, tn = rows[1][2], rows[-1][2]
    print(f"  ratio TTFT turn {turns} / turn 2 with reuse: {tn / t2:.2f} (target <= 1.5)")
    print(f"  ratio TTFT turn {turns} cold / with reuse:   {rows[-1][3] / tn:.2f}")
    print()
    bench.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TEMPLATES), help="default: each in turn")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reply-tokens", type=int, default=24)
    args = parser.parse_args(argv)
    for name in [args.model] if args.model else list(TEMPLATES):
        run(name, args.turns, args.threads, args.reply_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
