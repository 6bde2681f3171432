"""Hostile templates: published sandbox escapes and resource attacks, rendered as harness renders
every template — in the render worker. Escapes are refused (or render to a harmless string) and
leave no file, process or import behind; resource attacks stop within 2 s with a TemplateError and
the worker renders normally afterwards."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from harness.errors import TemplateError
from harness.prompt import render_worker
from harness.prompt.templates import ChatTemplate, load_template

PAYLOADS_DIR = Path(__file__).parent / "data" / "payloads"
ESCAPES = yaml.safe_load((PAYLOADS_DIR / "sandbox_escapes.yaml").read_text(encoding="utf-8"))
ATTACKS = yaml.safe_load((PAYLOADS_DIR / "resource_attacks.yaml").read_text(encoding="utf-8"))
MESSAGES = [{"role": "user", "content": "hi"}]
CHATML_REPLY = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
REPO = Path(__file__).resolve().parent.parent


def attack_source(attack: dict) -> str:
    """The attack's template: its payload, or its pieces joined (``[text, count]`` repeats text)."""
    if "payload" in attack:
        return attack["payload"]
    return "".join(p if isinstance(p, str) else p[0] * p[1] for p in attack["pieces"])


def render(name: str, source: str) -> str:
    return ChatTemplate(name, source, "test").render(MESSAGES, add_generation_prompt=False)


def assert_chatml_still_renders() -> None:
    assert load_template("chatml").render(MESSAGES, add_generation_prompt=True) == CHATML_REPLY


def test_corpora_are_well_formed():
    for corpus in (ESCAPES, ATTACKS):
        ids = [entry["id"] for entry in corpus]
        assert len(ids) == len(set(ids))
        assert all(entry.get("source") for entry in corpus)
    assert len(ESCAPES) >= 30
    assert all(e["expect"] in ("refused", "renders") for e in ESCAPES)


# --- sandbox escapes ---------------------------------------------------------------------------


@pytest.mark.parametrize("escape", ESCAPES, ids=[e["id"] for e in ESCAPES])
def test_escape_is_refused_or_renders_harmlessly(escape):
    if escape["expect"] == "refused":
        with pytest.raises(TemplateError) as err:
            render(escape["id"], escape["payload"])
        assert escape["error"] in err.value.message
        assert err.value.where and err.value.where.startswith(escape["id"])
    else:
        assert render(escape["id"], escape["payload"]) == escape["output"]


# Runs in a fresh interpreter whose working directory is a fresh tmp_path. Part 1 renders each
# escape in-process (the sandbox alone: the worker's audit hook is not installed) while an audit
# hook records imports, file writes, process creation and network use; part 2 renders each
# escape through the real worker, then lists the worker's child processes.
NO_TRACE_SCRIPT = r"""
import json, os, sys
import yaml
from harness.errors import TemplateError
from harness.prompt.sandbox import render_sandboxed
from harness.prompt.templates import ChatTemplate, load_template

escapes = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
messages = [{"role": "user", "content": "hi"}]

def attempt(render, escape):
    try:
        render(escape)
    except TemplateError:
        pass

def here(escape):
    render_sandboxed(escape["payload"], escape["id"], messages, add_generation_prompt=False)

# Warm up what a first render, a first failure and a first sandbox refusal legitimately import.
for source in (load_template("chatml").source, "{{ raise_exception('x') }}", "{{ x.y }}",
               "{{ ''.__class__.__mro__ }}", "{{ 'a{0}'.format(1) }}", "{{ ('a{0}'|safe).format(1) }}",
               "{{ {}|tojson }}{{ strftime_now('%Y') }}{{ lipsum(1) }}{{ range(2)|list }}"):
    attempt(here, {"payload": source, "id": "warm-up"})

events = []
def record(event, args):
    if event == "open" and isinstance(args[1], str) and not any(c in args[1] for c in "wax+"):
        return
    if event == "open" and args[1] is None and not args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        return
    if event.split(".")[0] in ("import", "open", "os", "subprocess", "socket", "ctypes", "shutil", "pty"):
        events.append([event, repr(args)[:200]])
modules = set(sys.modules)
sys.addaudithook(record)
for escape in escapes:
    attempt(here, escape)
events_here, new_modules = list(events), sorted(set(sys.modules) - modules)

for escape in escapes:
    attempt(lambda e: ChatTemplate(e["id"], e["payload"], "test").render(messages, add_generation_prompt=False), escape)
from harness.prompt.render_worker import shared_worker
worker = shared_worker().pid
children = []
for stat in os.listdir("/proc"):
    if stat.isdigit():
        try:
            fields = open(f"/proc/{stat}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker:
            children.append(int(stat))
print(json.dumps({"events": events_here, "new_modules": new_modules, "worker": worker,
                  "children": children, "files": sorted(os.listdir("."))}))
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes through /proc")
def test_escapes_leave_no_file_process_or_import(tmp_path):
    proc = subprocess.run([sys.executable, "-c", NO_TRACE_SCRIPT, str(PAYLOADS_DIR / "sandbox_escapes.yaml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["events"] == []
    assert report["new_modules"] == []
    assert report["worker"] and report["children"] == []
    assert report["files"] == []  # no PWNED, nothing at all


@pytest.mark.parametrize(("event", "args", "refused"), [
    ("os.system", (b"touch PWNED",), True),
    ("subprocess.Popen", ("touch", ["touch", "PWNED"], None, None), True),
    ("os.posix_spawn", ("/bin/sh", ["sh"], {}), True),
    ("os.fork", (), True),
    ("socket.connect", (None, ("127.0.0.1", 80)), True),
    ("ctypes.dlopen", ("libc.so.6",), True),
    ("os.remove", ("PWNED", -1), True),
    ("open", ("PWNED", "w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC), True),
    ("open", ("PWNED", None, os.O_RDWR), True),
    ("open", ("/usr/lib/python3/textwrap.py", "r", os.O_RDONLY), False),
    ("import", ("subprocess", None, [], [], []), True),
    ("import", ("ctypes.util", None, [], [], []), True),
    ("import", ("textwrap", None, [], [], []), False),
    ("compile", (b"", "<template>"), False),
])
def test_worker_audit_hook_refuses_side_effects(event, args, refused):
    if refused:
        with pytest.raises(PermissionError):
            render_worker._audit(event, args)
    else:
        render_worker._audit(event, args)


# --- resource attacks --------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ATTACKS, ids=[a["id"] for a in ATTACKS])
def test_resource_attack_is_stopped(attack):
    """The worker's limits stop it (how fast is bench/stress_templates.py's business)."""
    source = attack_source(attack)
    with pytest.raises(TemplateError) as err:
        render(attack["id"], source)
    expected = attack["error"] if isinstance(attack["error"], list) else [attack["error"]]
    assert any(text in err.value.message for text in expected), err.value.message
    assert err.value.where and err.value.where.startswith(attack["id"])
    assert_chatml_still_renders()


def test_a_timeout_kills_the_worker_and_the_next_render_starts_another():
    worker = render_worker.shared_worker()
    assert_chatml_still_renders()
    first = worker.pid
    with pytest.raises(TemplateError, match="took too long"):
        render("spin", ATTACKS[0]["payload"])
    assert worker.pid is None
    assert_chatml_still_renders()
    assert worker.pid not in (None, first)


def test_a_worker_killed_from_outside_is_replaced():
    assert_chatml_still_renders()
    pid = render_worker.shared_worker().pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while render_worker.shared_worker().pid == pid and time.monotonic() < deadline:
        time.sleep(0.01)
    assert_chatml_still_renders()


def test_worker_side_imports_only_jinja2_and_templates():
    code = ("import sys; import harness.prompt.render_worker, harness.prompt.templates; "
            "print(sorted(m for m in ('llama_cpp', 'numpy', 'prompt_toolkit', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "[]"


# --- what crosses to the worker ----------------------------------------------------------------


def test_messages_and_variables_cross_as_plain_data():
    source = "{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.tags|join(',') }};{% endfor %}{{ day }}"
    messages = [MappingProxyType({"role": "user", "content": "hi", "tags": ("a", "b")})]
    out = ChatTemplate("t", source, "test").render(
        messages, add_generation_prompt=False, variables=MappingProxyType({"day": datetime.date(2024, 6, 1)}))
    assert out == "user:hi:a,b;2024-06-01"


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", len])
def test_values_that_are_not_plain_data_are_refused(value):
    with pytest.raises(TemplateError, match="plain data"):
        ChatTemplate("t", "{{ x }}", "test").render(MESSAGES, add_generation_prompt=False,
                                                    variables={"x": value})
