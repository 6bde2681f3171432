"""Kill `harness chat` mid-turn at random points and count turns lost (figures for docs/reliability.md).

Each round starts the real REPL on a pty with one log, completes a short turn, starts a long
one and, after a random delay, sends SIGINT, SIGTERM or SIGKILL. Then it checks that every turn
logged before is still there and intact, that at most the turn in flight is missing, and that
`harness chat --resume` restores the conversation of the last logged turn.

    python bench/stress_kills.py [--kills 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.turn_log import read_log  # noqa: E402
from tests.support.ptychat import Chat  # noqa: E402

PROFILE = "model: smollm2\ntemplate: gguf\neos: ban\nsampling: {temperature: 0.8, max_tokens: 600}\n"


def one_round(folder: Path, log: Path, rng: random.Random, signum: int) -> tuple[int, bool]:
    """(turns lost beyond the one in flight, resumed correctly)."""
    profile = folder / "p.yaml"
    profile.write_text(PROFILE)
    before = list(read_log(log)) if log.exists() else []
    chat = Chat("--profile", str(profile), "--log", str(log))
    chat.wait_for(b"user>")
    chat.type("Tell me a very long story about a dragon.")
    chat.wait_for(b"[assistant]")
    chat.read(rng.uniform(0.05, 3.0))
    os.kill(chat.proc.pid, signum)
    if signum == signal.SIGINT:
        chat.wait_for(b"[interrupted")
        chat.type("/quit")
    chat.finish()
    after = list(read_log(log))
    lost = len(before) - sum(1 for a, b in zip(before, after, strict=False) if a == b)
    saved = folder / "resumed.json"
    if not after:
        return lost, True
    again = Chat("--profile", str(profile), "--resume", str(log), "--log", str(log))
    again.wait_for(b"user>")
    again.type(f"/save {saved}")
    again.wait_for(b"saved")
    again.type("/quit")
    again.finish()
    return lost, json.loads(saved.read_text())["messages"] == after[-1]["messages"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    signals = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    lost_total, resumed_ok, start = 0, 0, time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARNESS_HOME"] = tmp
        folder, log = Path(tmp), Path(tmp) / "chat.jsonl"
        for i in range(args.kills):
            signum = signals[i % len(signals)]
            lost, resumed = one_round(folder, log, rng, signum)
            lost_total += lost
            resumed_ok += resumed
            print(f"kill {i + 1:2d} {signal.Signals(signum).name:7}: finished turns lost {lost}, "
                  f"resume {'ok' if resumed else 'WRONG'}", flush=True)
        turns = len(list(read_log(log)))
    print(f"\nkills tried: {args.kills}   finished turns lost: {lost_total}   resumes correct: "
          f"{resumed_ok}/{args.kills}   turns in log: {turns}   ({time.monotonic() - start:.0f} s)")
    return 0 if lost_total == 0 and resumed_ok == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
