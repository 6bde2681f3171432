"""The core stays pure: importing it loads neither llama_cpp nor prompt_toolkit."""

from __future__ import annotations

import subprocess
import sys

CORE = ["harness.prompt.conversation", "harness.prompt.templates", "harness.prompt.markers", "harness.prompt.segments",
        "harness.prompt.modes", "harness.prompt.turns", "harness.prompt.attribution", "harness.stats.entropy", "harness.generation.sampling",
        "harness.generation.evaluation", "harness.generation.loop", "harness.generation.records", "harness.chat.session",
        "harness.generation.workbench", "harness.generation.profiles", "harness.models.gguf", "harness.cli.main", "harness.backends.fake",
        "harness.stats.topk", "harness.backends.remote", "harness.generation.remote_loop", "harness.generation.remote_workbench",
        "harness.generation.roles", "harness.backends.servers", "harness.generation.stop_text",
        "harness.chat.tree", "harness.chat.events", "harness.chat.commands.turns", "harness.chat.commands.edit",
        "harness.chat.commands.inspect", "harness.chat.commands.files", "harness.chat.commands.configure",
        "harness.chat.commands.general", "harness.generation.request", "harness.chat.engine_handle",
        "harness.chat.saved", "harness.experiment.spec", "harness.stats.bootstrap", "harness.experiment.summary",
        "harness.experiment.cell_queue", "harness.experiment.pool",
        "harness.report.charts", "harness.report.html", "harness.report.assets", "harness.report.sources",
        "harness.api", "harness.generation.turn", "harness.generation.open", "harness.chat.dispatch",
        "harness.prompt.sandbox", "harness.readers"]


def test_core_imports_no_engine_and_no_terminal_library():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE)
            + "print(sorted(m for m in ('llama_cpp', 'prompt_toolkit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_is_fast_to_import():
    code = "import sys, harness.cli.main; print(sorted(m for m in ('numpy', 'llama_cpp', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_harness_help():
    proc = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "render" in proc.stdout and "chat" in proc.stdout


def test_import_harness_is_lazy():
    code = ("import sys, harness\n"
            "print(sorted(m for m in ('numpy', 'llama_cpp', 'jinja2', 'harness.api') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import harness; print(all(getattr(harness, n) is not None for n in harness.__all__), harness.open.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True harness.api"
