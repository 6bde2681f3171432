"""`harness doctor`: the installed llama.cpp build against what this machine grants.

``--check`` runs a small batched decode of the default model with llama.cpp's default options
(``./dev`` runs it in a child process after installing a build: an instruction the OS does not
grant kills it with SIGILL, and setup falls back to the portable build). ``--brief`` prints the
one line setup shows.
"""

from __future__ import annotations

import argparse
import json
import sys


def cmd_doctor(args: argparse.Namespace) -> int:
    from harness.backends.llama_build import build_report, check_decode

    if args.check:
        from harness.models.registry import resolve_model

        _, path = resolve_model(None)
        seconds = check_decode(str(path))
        print(f"batched decode of {path.name}: ok ({seconds:.2f} s)")
        return 0
    report = build_report()
    if args.brief:
        print(report.brief())
        return 0
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"llama.cpp     {report.system_info}")
    print(f"CPU grants    {' '.join(report.granted) or '(not an x86-64 Linux machine: not probed)'}")
    if report.refused:
        print(f"not granted   {' '.join(report.refused)} (advertised by CPUID; the OS does not grant it)")
    print(f"build uses    {report.brief()}")
    print(f"CMAKE_ARGS    {report.cmake_args if report.cmake_args is not None else '(not installed by ./dev)'}")
    return 0
