"""Run Python code in a child and measure that child's own peak memory.

Neither RUSAGE_CHILDREN nor the rusage os.wait4 returns will do: both keep a peak from before
the child's exec — the forked copy of the test process, which holds the loaded models when the
whole suite runs — so a child that used 60 MB reports the test process's 1.7 GB. The child's
/proc/self/status VmHWM belongs to the address space made at exec: it is read at exit (atexit)
and written to a file the parent names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

_PEAK = ("import atexit, os\n"
         "def _peak(path=os.environ.get('HARNESS_TEST_PEAK_FILE')):\n"
         "    if path:\n"
         "        with open('/proc/self/status') as f, open(path, 'w') as out:\n"
         "            out.write(f.read())\n"
         "atexit.register(_peak)\n")


@dataclass
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_kib: int | None  # VmHWM at exit; None when the child did not exit normally


def run_python(code: str, args: list[str], *, timeout: float, env: dict | None = None) -> Measured:
    """`python -c CODE ARGS...` with the peak-memory hook put first."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = os.path.join(tmp, "status")
        child_env = {**(env if env is not None else os.environ), "HARNESS_TEST_PEAK_FILE": peak_file}
        proc = subprocess.run([sys.executable, "-c", _PEAK + code, *args], capture_output=True, text=True,
                              timeout=timeout, env=child_env)
        peak = None
        if os.path.exists(peak_file):
            with open(peak_file, encoding="utf-8") as f:
                found = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
            peak = int(found.group(1)) if found else None
        return Measured(proc.returncode, proc.stdout, proc.stderr, peak)
