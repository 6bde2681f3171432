"""The core stays pure: importing it loads neither llama_cpp nor prompt_toolkit."""

from __future__ import annotations

import subprocess
import sys

CORE = ["harness.conversation", "harness.templates", "harness.markers", "harness.segments",
        "harness.modes", "harness.turns", "harness.attribution", "harness.entropy", "harness.sampling",
        "harness.evaluation", "harness.generate", "harness.records", "harness.session",
        "harness.workbench", "harness.profiles", "harness.gguf", "harness.cli", "harness.backends.fake",
        "harness.topk", "harness.remote", "harness.remote_generate", "harness.remote_workbench",
        "harness.generated_roles", "harness.backends.servers", "harness.stop_text",
        "harness.tree", "harness.events", "harness.session_turns", "harness.session_edit",
        "harness.session_inspect", "harness.session_files", "harness.session_settings",
        "harness.session_store", "harness.experiment", "harness.bootstrap", "harness.experiment_summary",
        "harness.cell_queue", "harness.experiment_pool",
        "harness.report_charts", "harness.report_html", "harness.report_assets", "harness.report_sources"]


def test_core_imports_no_engine_and_no_terminal_library():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + "print(sorted(m for m in ('llama_cpp', 'prompt_toolkit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_is_fast_to_import():
    code = "import sys, harness.cli; print(sorted(m for m in ('numpy', 'llama_cpp', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_harness_help():
    proc = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "render" in proc.stdout and "chat" in proc.stdout
