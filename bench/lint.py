"""`harness lint` over llama.cpp's 70 real templates in one call, and the static pass's growth.

Measures, in one run on one machine:
- wall time of ``harness lint DIR`` (static pass, probe renders, capability report off as in a
  folder's text output) and ``harness lint DIR --static``, each a fresh process, best of --reps;
- in process: the static pass alone, and lint per template (static + renders), best of --reps;
- the baseline: one plain render of a two-message chat per template through the same render
  worker (what any render-based linter pays at least), so lint's cost reads as N baseline renders;
- the static pass on the largest real template repeated x5 and x50 (84 KB and 836 KB): time
  should grow about x10 (linear), and a 10 MB source is refused (L112) at once.

    flock /work/.locks/heavy nice -n 10 .venv/bin/python bench/lint.py [--reps 3] [--folder DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.errors import TemplateError  # noqa: E402
from harness.lab.lint.files import Options, lint_all  # noqa: E402
from harness.lab.lint.static import static_findings  # noqa: E402
from harness.prompt.templates import ChatTemplate  # noqa: E402
from tests.support.real_templates import real_templates_dir  # noqa: E402

CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]


def best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def cli(folder: Path, *extra: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "harness", "lint", str(folder), *extra], capture_output=True,
                          text=True, cwd=REPO)
    return proc.returncode, proc.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or real_templates_dir()
    files = sorted(folder.glob("*.jinja"))
    templates = [ChatTemplate(p.name, p.read_text(encoding="utf-8"), str(p)) for p in files]
    print(f"{len(files)} templates, {sum(len(t.source) for t in templates) / 1024:.0f} KB, from {folder}")

    def baseline() -> None:
        for t in templates:
            with contextlib.suppress(TemplateError):  # a template that fails still cost its render
                t.render(CHAT, add_generation_prompt=True)

    baseline()  # start the render worker, compile every template once
    base = best(baseline, args.reps)
    static = best(lambda: [static_findings(t) for t in templates], args.reps)
    full = best(lambda: lint_all([str(folder)], [], Options(with_capabilities=False)), args.reps)
    print(f"baseline: one render per template      {base * 1000:8.0f} ms  ({base / len(files) * 1000:.1f} ms each)")
    print(f"static pass, in process                 {static * 1000:8.0f} ms  ({static / len(files) * 1000:.1f} ms "
          f"each; {static / base:.1f} x baseline)")
    print(f"lint (static + probes), in process      {full * 1000:8.0f} ms  ({full / len(files) * 1000:.1f} ms each; "
          f"{full / base:.1f} x baseline)")
    for label, extra in (("harness lint DIR --static", ("--static",)), ("harness lint DIR", ())):
        seconds = best(lambda extra=extra: cli(folder, *extra), args.reps)
        code, summary = cli(folder, *extra)
        print(f"{label:40}{seconds * 1000:8.0f} ms  exit {code}: {summary}")

    print("static pass growth (one real template repeated):")
    unit = max(templates, key=lambda t: len(t.source)).source
    previous = None
    for times in (5, 50):  # the largest real template (16.7 KB) x5 and x50 stay under the 1,000,000 cap
        source = unit * times
        seconds = statistics.median(best(lambda s=source: static_findings(ChatTemplate("grown", s, "b")), 1)
                                    for _ in range(args.reps))
        growth = f"  x{seconds / previous:.1f} for x10 the size" if previous else ""
        print(f"  {len(source) / 1024:7.0f} KB  {seconds * 1000:8.0f} ms{growth}")
        previous = seconds
    huge = unit * 600
    seconds = best(lambda: static_findings(ChatTemplate("huge", huge, "b")), args.reps)
    print(f"  {len(huge) / 1024:7.0f} KB  {seconds * 1000:8.1f} ms  (refused: "
          f"{static_findings(ChatTemplate('huge', huge, 'b'))[0].code})")


if __name__ == "__main__":
    main()
