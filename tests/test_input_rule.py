"""Issue 26, the input rule: every file harness is handed goes through one opener (a regular
file, its size checked before reading, YAML and JSON with depth and size limits), and an
experiment's ``file:`` entries stay inside its folder. Each case is a one-line error naming the
file, never a hang, a traceback or a read of somewhere else."""

from __future__ import annotations

import json
import os
import time

import pytest

from harness.cli.main import main

MESSAGES = '[{"role": "user", "content": "hi"}]'


def _one_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


def _run_quickly(argv: list[str]) -> int:
    start = time.monotonic()
    code = main(argv)
    assert time.monotonic() - start < 10
    return code


@pytest.mark.parametrize("special", ["/dev/zero", "fifo", "folder"])
@pytest.mark.parametrize("command", ["render", "score-text", "import", "run"])
def test_special_files_are_refused_before_reading(command, special, tmp_path, fifo, capsys):
    path = {"/dev/zero": "/dev/zero", "fifo": str(fifo), "folder": str(tmp_path)}[special]
    argv = {"render": ["render", "--template", "chatml", "--messages", path],
            "score-text": ["score", "--text", path],
            "import": ["import", path],
            "run": ["run", path, "--db", str(tmp_path / "r.sqlite")]}[command]
    assert _run_quickly(argv) == 1
    _one_error(capsys, "regular file" if special != "folder" else "directory")


def test_a_yaml_file_past_the_yaml_limit_is_refused_unparsed(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("- role: user\n  content: hi\n" * 250_000)  # 6.8 MB, under the 64 MB file limit
    assert _run_quickly(["render", "--template", "chatml", "--messages", str(path)]) == 1
    _one_error(capsys, "big.yaml", "over the limit of 4 MB", "JSON")


def test_yaml_tags_beyond_plain_data_name_the_file(tmp_path, capsys):
    path = tmp_path / "tagged.yaml"
    path.write_text("- role: user\n  content: !!binary aGVsbG8=\n")
    assert main(["render", "--template", "chatml", "--messages", str(path)]) == 1
    _one_error(capsys, "tagged.yaml:2", "!!binary")
    profile = tmp_path / "p.yaml"
    profile.write_text("template: chatml\nvars: {x: !!binary aGVsbG8=}\n")
    path.write_text(MESSAGES)
    assert main(["generate", "--messages", str(path), "--profile", str(profile), "--backend", "http://127.0.0.1:9"]) == 1
    _one_error(capsys, "p.yaml:2", "!!binary")


def _experiment(tmp_path, **fields) -> str:
    folder = tmp_path / "exp"
    folder.mkdir(exist_ok=True)
    path = folder / "e.yaml"
    path.write_text(json.dumps({"models": ["smollm2"], "templates": ["chatml"], "max_tokens": 2, **fields}))
    return str(path)


@pytest.mark.parametrize("name", ["../secret.yaml", "/etc/hostname", "sub/../../secret.yaml", "link.yaml"])
@pytest.mark.parametrize("key", ["conversations", "items"])
def test_file_entries_stay_inside_the_experiment_folder(name, key, tmp_path, capsys):
    (tmp_path / "secret.yaml").write_text(MESSAGES)
    path = _experiment(tmp_path, **{key: [{"file": name}]})
    (tmp_path / "exp" / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    assert main(["run", path, "--db", str(tmp_path / "r.sqlite")]) == 1
    _one_error(capsys, "outside the experiment's folder", f"{key}[0].file")


def test_a_subfolder_is_fine_and_files_from_names_another_folder(tmp_path):
    from harness.experiment.spec import load_experiment

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "c.json").write_text(MESSAGES)
    path = _experiment(tmp_path, conversations=[{"file": "sub/c.json"}, {"file": str(tmp_path / "shared" / "c.json"),
                                                                          "name": "shared"}])
    (tmp_path / "exp" / "sub").mkdir()
    (tmp_path / "exp" / "sub" / "c.json").write_text(MESSAGES)
    from harness.errors import ExperimentError

    with pytest.raises(ExperimentError, match="outside"):
        load_experiment(path)
    exp = load_experiment(path, files_from=(tmp_path / "shared",))
    assert [c.name for c in exp.conversations] == ["c", "shared"]


@pytest.mark.parametrize("content", ["5", "[" * 5000 + "]" * 5000, "- " * 3000 + "x", "{a: 1}"])
def test_an_items_file_that_is_not_a_list_of_items_is_one_line(content, tmp_path, capsys):
    path = _experiment(tmp_path, items=[{"file": "items.yaml"}])
    (tmp_path / "exp" / "items.yaml").write_text(content)
    assert main(["run", path, "--db", str(tmp_path / "r.sqlite")]) == 1
    _one_error(capsys, "items.yaml")


def test_an_items_file_names_the_line_of_a_bad_item(tmp_path, capsys):
    path = _experiment(tmp_path, items=[{"file": "items.yaml"}])
    (tmp_path / "exp" / "items.yaml").write_text(
        "- {question: Q, options: [a, b], answer: A}\n- {question: Q, options: [a, b], answer: Z}\n")
    assert main(["run", path, "--db", str(tmp_path / "r.sqlite")]) == 1
    _one_error(capsys, "items.yaml:2")


def test_import_of_a_preset_with_a_very_long_name(tmp_path, capsys):
    preset = tmp_path / "p.json"
    preset.write_text(json.dumps({"name": "n" * 10_000, "input_sequence": "<|user|>\n",
                                  "output_sequence": "<|assistant|>\n"}))
    code = main(["import", str(preset)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert code == 0 or (code == 1 and len(err.strip().splitlines()) == 1)
    assert main(["import", "x" * 10_000 + ".json"]) == 1
    line = _one_error(capsys, "File name too long")
    assert len(line) < 400
