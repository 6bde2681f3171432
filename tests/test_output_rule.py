"""Issue 26, the output rule: every line harness writes to a terminal goes through
harness.untrusted.terminal.write. Read from the source: no ``print``, no ``sys.stdout`` /
``sys.stderr`` and no ``print_formatted_text`` anywhere else in the package; then the paths the
second red team found raw (template and file names, experiment labels, import notes, argparse's
echo of argv) checked end to end."""

from __future__ import annotations

import ast
import io
import json
import sys
from pathlib import Path

import pytest

from harness.cli.main import main

PACKAGE = Path(__file__).resolve().parents[1] / "harness"
OUTPUT = PACKAGE / "untrusted" / "terminal.py"
# The REPL draws through prompt_toolkit; its one drawing function applies the same rule.
REPL_DRAWING = (PACKAGE / "repl" / "display.py", "_print")
KNOWN_EXCEPTIONS: set[tuple[Path, str]] = set()
RAW = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m"


def _writes(path: Path) -> list[tuple[int, str, str]]:
    """(line, enclosing function, what) for each direct terminal write in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "print", "print_formatted_text"):
            found.append((node.lineno, function, node.func.id))
        if (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__")
                and isinstance(node.value, ast.Name) and node.value.id == "sys"):
            found.append((node.lineno, function, f"sys.{node.attr}"))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_nothing_writes_to_the_terminal_but_the_output_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == OUTPUT:
            continue
        for line, function, what in _writes(path):
            if (path, function) == REPL_DRAWING and what == "print_formatted_text":
                continue
            if (path, function) in KNOWN_EXCEPTIONS:
                continue
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} {what} in {function or 'module'}")
    assert offenders == []


def test_the_rule_finds_a_print(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("import sys\ndef f():\n    print('x')\n    sys.stderr.write('y')\n")
    assert [(w[1], w[2]) for w in _writes(path)] == [("f", "print"), ("f", "sys.stderr")]


def test_write_shows_controls_and_exact_keeps_bytes_on_a_pipe():
    from harness.untrusted import terminal

    out = io.StringIO()
    terminal.write("a" + RAW + "\nb", stream=out)
    terminal.write("c" + RAW, stream=out, exact=True)
    terminal.write("x\ny", stream=out, one_line=True, end="")
    text = out.getvalue()
    assert text.startswith("a␛]52;c;cHduZWQ=␇␛[2J\\x9b31m\nb\nc\x1b]52")  # a StringIO is no terminal
    assert text.endswith("x␤y")


def test_json_escapes_c1_controls_and_writes_no_infinity():
    from harness.untrusted import terminal

    out = io.StringIO()
    terminal.write_json({"t": "\x9b2J\x7f", "x": float("-inf"), "ok": [1.5, float("nan")]}, stream=out)
    text = out.getvalue()
    assert "\x9b" not in text and "\x7f" not in text and "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"t": "\x9b2J\x7f", "x": None, "ok": [1.5, None]}


def _no_raw(text: str) -> bool:
    return not any(c in text for c in "\x1b\x07\x9b")


def test_argparse_does_not_echo_raw_escapes(capsys):
    with pytest.raises(SystemExit):
        main(["models", RAW])
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err and _no_raw(err) and "␛]52" in err
    with pytest.raises(SystemExit):
        main(["run"])
    assert _no_raw(capsys.readouterr().err)


def test_templates_listing_shows_user_template_names(harness_home, capsys):
    folder = harness_home / "templates"
    folder.mkdir(parents=True)
    (folder / f"evil{RAW}.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    (folder / f"broken{RAW}.jinja").write_text("{% for %}")
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert "evil␛]52" in out and "broken␛]52" in out and _no_raw(out)


def test_import_notes_show_entry_names(tmp_path, harness_home, capsys):
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": [
        {"name": f"tool{RAW}", "template": "{{ messages[0].content }}"},
        {"name": "rag", "template": "{% for m in messages %}{{ m.content }}{% endfor %}"}]}))
    assert main(["import", str(config), "--name", "mine"]) == 0
    out = capsys.readouterr().out
    assert _no_raw(out) and "␛]52" in out


def test_sillytavern_leftover_macros_are_shown(tmp_path, harness_home, capsys):
    preset = tmp_path / "st.json"
    preset.write_text(json.dumps({"name": "st", "input_sequence": f"<|user|>{{{{{RAW}}}}}\n",
                                  "output_sequence": "<|assistant|>\n", "system_sequence": "<|system|>\n"}))
    assert main(["import", str(preset)]) == 0
    out = capsys.readouterr().out
    assert _no_raw(out) and "␛]52" in out


def test_run_start_and_progress_lines_show_names(tmp_path, harness_home, capsys, monkeypatch):
    from harness.backends.fake import FakeBackend
    from harness.models import registry

    monkeypatch.setattr(registry, "open_backend", lambda *a, **k: FakeBackend("Hi<|im_end|>"))
    experiment = tmp_path / "e.yaml"
    experiment.write_text(json.dumps({
        "name": f"e{RAW}", "models": [{"name": "smollm2", "label": f"m{RAW}"}], "templates": ["chatml"],
        "max_tokens": 2, "sampling": {f"s{RAW}": {"temperature": 0}},
        "conversations": [{"name": "a", "messages": [{"role": "user", "content": "Hi"}]}]}))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    main(["run", str(experiment), "--db", str(tmp_path / "r.sqlite")])
    captured = capsys.readouterr()
    assert _no_raw(captured.err) and _no_raw(captured.out)
    assert "e␛]52" in captured.err
