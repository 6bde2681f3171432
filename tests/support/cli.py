"""Running harness as a person does: the CLI in a subprocess, messages written to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def harness(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"harness {' '.join(args)} failed: {proc.stderr}")
    return proc


def write_messages(path: Path, messages: list[dict]) -> Path:
    path.write_text(json.dumps(messages), encoding="utf-8")
    return path
