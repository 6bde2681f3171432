"""`./dev setup` picks the llama.cpp build: the one for what this CPU grants, proven by a batched
decode in a child process, and the portable one when that child dies of SIGILL (a machine whose
CPU advertises an instruction set the OS does not grant).

The script runs for real in a sandbox copy of the repository; pip and the `harness` command are
stand-ins there (pip records what it installs, `harness doctor --check` dies of SIGILL while the
fast wheel is installed), so the glue is tested without building anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.llama_build import PORTABLE_X86, cmake_args, probe

ROOT = Path(__file__).resolve().parents[1]
PIP = """#!/bin/sh
# pip stand-in: records `install` arguments, ignores everything else
if [ "$2" = pip ] && [ "$3" = install ]; then echo "$*" >> "$(dirname "$0")/../pip.log"; exit 0; fi
if [ "$1" = -m ] && [ "$2" = pip ]; then exit 0; fi
exec {python} "$@"
"""
HARNESS = """#!/bin/sh
# `harness` stand-in: the check dies of SIGILL while the fast wheel is the last one installed
if [ "$2" = --check ]; then
    if [ -e "$(dirname "$0")/../die-on-fast" ] && grep '[.]whl' "$(dirname "$0")/../pip.log" | tail -n 1 | grep -q fast; then
        kill -ILL $$
    fi
    exit 0
fi
echo "stand-in build"
"""


def _wheel_key(args: str) -> str:
    import hashlib

    text = f"0.3.36|{args}|{os.uname().machine}|{tuple(sys.version_info[:2])}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if os.uname().machine != "x86_64" or not sys.platform.startswith("linux"):
        pytest.skip("the build choice is made on x86-64 Linux")
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dev", "pyproject.toml", "setup.py", "requirements-models.txt"):
        shutil.copy2(ROOT / name, repo / name)
    (repo / "harness").symlink_to(ROOT / "harness")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(PIP.format(python=sys.executable))
    (bin_dir / "harness").write_text(HARNESS)
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    (repo / ".venv" / ".harness-chromium").touch()  # no browser install here
    wheels = tmp_path / "wheels"
    fast = cmake_args(probe())
    for args, tag in ((fast, "fast"), (PORTABLE_X86, "portable")):
        folder = wheels / _wheel_key(args)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"llama_cpp_python-0.3.36-py3-none-{tag}.whl").touch()
    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    env |= {"HARNESS_WHEELS": str(wheels), "PYTHON": sys.executable}
    return repo, env


def _setup(repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["./dev", "setup"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_the_build_for_this_cpu_is_installed_when_it_runs(sandbox):
    repo, env = sandbox
    done = _setup(repo, env)
    assert done.returncode == 0, done.stderr
    assert (repo / ".venv" / ".harness-llama-args").read_text().strip() == cmake_args(probe())
    assert "llama.cpp: stand-in build" in done.stderr
    assert not list((Path(env["HARNESS_WHEELS"])).glob("*/rejected"))


def test_a_build_that_dies_of_sigill_falls_back_to_the_portable_one_for_good(sandbox):
    repo, env = sandbox
    if cmake_args(probe()) == PORTABLE_X86:
        pytest.skip("this machine's build is the portable one already")
    (repo / ".venv" / "die-on-fast").touch()
    done = _setup(repo, env)
    assert done.returncode == 0, done.stderr
    assert "died (signal 4); using the portable build" in done.stderr
    installs = (repo / ".venv" / "pip.log").read_text().splitlines()
    wheels = [line for line in installs if ".whl" in line]
    assert len(wheels) == 2 and "fast" in wheels[0] and "portable" in wheels[1]
    assert (repo / ".venv" / ".harness-llama-args").read_text().strip() == PORTABLE_X86
    rejected = list(Path(env["HARNESS_WHEELS"]).glob("*/rejected"))
    assert len(rejected) == 1 and "signal 4" in rejected[0].read_text()
    again = _setup(repo, env)  # the choice is remembered: nothing is reinstalled
    assert again.returncode == 0 and "setting up" not in again.stderr
    assert (repo / ".venv" / "pip.log").read_text().splitlines() == installs


def test_cmake_args_win(sandbox):
    repo, env = sandbox
    env["CMAKE_ARGS"] = "-DGGML_NATIVE=OFF -DGGML_AVX2=OFF"
    folder = Path(env["HARNESS_WHEELS"]) / _wheel_key(env["CMAKE_ARGS"])
    folder.mkdir()
    (folder / "llama_cpp_python-0.3.36-py3-none-mine.whl").touch()
    done = _setup(repo, env)
    assert done.returncode == 0, done.stderr
    assert (repo / ".venv" / ".harness-llama-args").read_text().strip() == env["CMAKE_ARGS"]
    wheels = [line for line in (repo / ".venv" / "pip.log").read_text().splitlines() if ".whl" in line]
    assert len(wheels) == 1 and "mine" in wheels[0]


NO_HEADERS = """#!/bin/sh
# a Python without its development headers: the header check fails, everything else is real
case "$2" in *Python.h*) exit 1;; esac
exec {python} "$@"
"""


def test_a_python_without_headers_is_named_in_one_line_before_anything_is_installed(sandbox, tmp_path):
    repo, env = sandbox
    python = tmp_path / "python-no-headers"
    python.write_text(NO_HEADERS.format(python=sys.executable))
    python.chmod(0o755)
    env["PYTHON"] = str(python)
    done = _setup(repo, env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Python's headers" in lines[0] and "python3-dev" in lines[0]
    assert not (repo / ".venv" / "pip.log").exists()
