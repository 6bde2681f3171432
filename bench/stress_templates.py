"""Every hostile template in tests/data/payloads/, rendered the way harness renders any template.

Sandbox escapes (sandbox_escapes.yaml) count as blocked when they are refused with a
TemplateError or render exactly their recorded harmless output. Resource attacks
(resource_attacks.yaml) count as stopped when they raise a TemplateError within 2 s. Everything runs
in an empty temporary working directory, which must still be empty at the end; the render worker
must still render ChatML afterwards. Also measures the cost of a ChatML render through the worker
against the same render in-process (the sandbox alone, as harness rendered before the worker).

    python bench/stress_templates.py [--verbose]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from harness.errors import TemplateError
from harness.prompt.sandbox import render_sandboxed
from harness.prompt.templates import ChatTemplate, load_template

PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "data" / "payloads"
LIMIT_S = 2.0
MESSAGES = [{"role": "user", "content": "hi"}]
CHATML_REPLY = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
CONVERSATION = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye " * 50}]


def attempt(name: str, source: str) -> tuple[float, str | None, TemplateError | None]:
    """(seconds, output, error): one render through the worker."""
    started = time.perf_counter()
    try:
        output = ChatTemplate(name, source, "stress").render(MESSAGES, add_generation_prompt=False)
        return time.perf_counter() - started, output, None
    except TemplateError as exc:
        return time.perf_counter() - started, None, exc


def run_escapes(verbose: bool) -> tuple[int, int]:
    escapes = yaml.safe_load((PAYLOADS / "sandbox_escapes.yaml").read_text(encoding="utf-8"))
    blocked = 0
    for escape in escapes:
        seconds, output, error = attempt(escape["id"], escape["payload"])
        ok = (error is not None and escape["error"] in error.message) if escape["expect"] == "refused" \
            else (error is None and output == escape["output"])
        blocked += ok
        if verbose or not ok:
            outcome = f"refused: {error.message}" if error else f"rendered {output!r}"
            print(f"  {'ok ' if ok else 'BAD'} {seconds * 1000:7.1f} ms  {escape['id']}: {outcome[:90]}")
    return len(escapes), blocked


def run_attacks() -> tuple[int, int, float]:
    attacks = yaml.safe_load((PAYLOADS / "resource_attacks.yaml").read_text(encoding="utf-8"))
    stopped, slowest = 0, 0.0
    for attack in attacks:
        source = attack.get("payload") or "".join(
            p if isinstance(p, str) else p[0] * p[1] for p in attack["pieces"])
        seconds, _, error = attempt(attack["id"], source)
        ok = error is not None and seconds < LIMIT_S
        stopped += ok
        slowest = max(slowest, seconds)
        outcome = error.message if error else "RENDERED"
        print(f"  {'ok ' if ok else 'BAD'} {seconds:6.3f} s  {attack['id']:<24} {outcome[:80]}")
    return len(attacks), stopped, slowest


def per_render_us(render: Callable[[], Any], batches: int = 20, per_batch: int = 200) -> float:
    """Median microseconds per call over several batches, after a warm-up call."""
    render()
    times = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(per_batch):
            render()
        times.append((time.perf_counter() - started) / per_batch * 1e6)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print every escape, not only failures")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stress-templates-") as workdir:
        os.chdir(workdir)  # before the first render: the worker starts here
        chatml = load_template("chatml")
        variables = {"bos_token": "", "eos_token": ""}
        in_process = per_render_us(lambda: render_sandboxed(
            chatml.source, chatml.name, CONVERSATION, add_generation_prompt=True, variables=variables))
        worker = per_render_us(lambda: chatml.render(CONVERSATION, add_generation_prompt=True,
                                                     variables=variables))
        print("sandbox escapes:")
        tried, blocked = run_escapes(args.verbose)
        print("resource attacks:")
        attacks, stopped, slowest = run_attacks()
        still_renders = chatml.render(MESSAGES, add_generation_prompt=True) == CHATML_REPLY
        files = sorted(os.listdir(workdir))
        os.chdir(Path(__file__).resolve().parent)
    print(f"payloads tried / blocked: {tried} / {blocked}")
    print(f"resource attacks tried / stopped within {LIMIT_S:g} s: {attacks} / {stopped}")
    print(f"max time: {slowest:.3f} s")
    print(f"files written in the working directory: {len(files)} {files if files else ''}")
    print(f"worker still renders ChatML: {'yes' if still_renders else 'NO'}")
    print(f"ChatML render: {in_process:.1f} us in-process (sandbox only), {worker:.1f} us through the "
          f"worker (+{worker - in_process:.1f} us)")
    clean = blocked == tried and stopped == attacks and still_renders and not files
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
