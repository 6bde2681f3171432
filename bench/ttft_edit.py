"""Time to first token after editing message k of a 10-message conversation, in one run.

Through the REPL's own path (``Session.handle``: ``/edit k TEXT`` then ``/reply``) on one loaded
model. For each k and repetition, three measurements on the same conversation:

- *cold*: the KV cache emptied, then ``/reply`` on the unedited conversation (full prompt);
- *edit + reuse*: after that reply, ``/edit k`` and ``/reply`` — the evaluator keeps the longest
  token prefix the new prompt shares with the cached one and evaluates only the rest;
- *edit, cold*: the same edited prompt with the cache emptied first (what no reuse would cost).

TTFT is the time from handing the line to the session until the first streamed token. Figures
are medians over ``--reps``; the reused / prompt token counts come from the evaluator.

    python bench/ttft_edit.py [--model smollm2] [--k 1,5,9] [--reps 3] [--threads 2] [--words 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness.chat.dispatch import handle
from harness.chat.events import TokenStreamed
from harness.chat.session import Session
from harness.chat.tree import Tree
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.models.registry import open_backend
from harness.prompt.conversation import ASSISTANT, USER, Conversation, Message
from harness.prompt.templates import load_template

FILLER = ("the keeper of the lighthouse counted ships and wrote their names in a blue book "
          "while the dragon slept under the cliff and dreamed of salt and thunder")


def conversation(words: int) -> Conversation:
    filler = FILLER.split()
    messages = []
    for i in range(10):
        text = " ".join(filler[(i + j) % len(filler)] for j in range(words))
        messages.append(Message(USER if i % 2 == 0 else ASSISTANT, f"Part {i}: {text}."))
    return Conversation(tuple(messages))


def ttft(session: Session, line: str) -> float:
    first: list[float] = []

    def emit(event) -> None:
        if isinstance(event, TokenStreamed) and not first:
            first.append(time.perf_counter())

    start = time.perf_counter()
    handle(session, line, emit)
    if not first:
        raise SystemExit(f"no token streamed for {line!r}")
    return first[0] - start


def measure(session: Session, base: Conversation, k: int) -> dict[str, float]:
    evaluator = session.bench.evaluator
    session.trees.change(Tree.from_conversation(base))
    evaluator.forget()
    cold = ttft(session, "/reply")
    n_prompt = len(session.transcript[-1].prompt_tokens)
    handle(session, "/undo", lambda e: None)  # back to the 10 messages, cache still warm
    edited = f"Part {k} (edited): a different sentence about a different lighthouse."
    handle(session, f"/edit {k} {edited}", lambda e: None)
    reuse = ttft(session, "/reply")
    reused, n_edited = evaluator.reused, len(session.transcript[-1].prompt_tokens)
    handle(session, "/undo", lambda e: None)
    evaluator.forget()
    edit_cold = ttft(session, "/reply")
    return {"cold": cold, "reuse": reuse, "edit_cold": edit_cold, "reused": reused,
            "n_prompt": n_prompt, "n_edited": n_edited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--k", default="1,5,9", help="comma-separated message indexes to edit (0-9)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--words", type=int, default=60, help="words per message")
    args = parser.parse_args()
    backend = open_backend(args.model, n_ctx=4096, n_threads=args.threads)
    bench = Workbench(backend, load_template("gguf", embedded=backend.info.chat_template, model_name=args.model))
    session = Session(bench, params=SamplingParams(temperature=0, max_tokens=1))
    base = conversation(args.words)
    measure(session, base, 5)  # warm-up
    print(f"model {backend.info.name}, 10 messages, {args.words} words each, {args.threads} threads, "
          f"medians of {args.reps}")
    print(f"{'edit at':>8} {'prompt tok':>10} {'reused tok':>10} {'TTFT cold':>10} "
          f"{'TTFT edit+reuse':>16} {'TTFT edit cold':>15} {'speed-up':>9}")
    for k in (int(x) for x in args.k.split(",")):
        runs = [measure(session, base, k) for _ in range(args.reps)]
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        print(f"{k:>8} {med['n_edited']:>10.0f} {med['reused']:>10.0f} {med['cold'] * 1e3:>8.1f}ms "
              f"{med['reuse'] * 1e3:>14.1f}ms {med['edit_cold'] * 1e3:>13.1f}ms "
              f"{med['edit_cold'] / med['reuse']:>8.1f}x")
    backend.close()


if __name__ == "__main__":
    main()
