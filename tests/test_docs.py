"""Docs that cannot drift: the generated parts of docs/ equal what the code generates, every
command and flag `harness X --help` prints is named in docs/cli.md, the README stays a front page
whose links resolve, and every page the README promises exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli.docs import SECTIONS, regenerate
from harness.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]
PAGES = ("cli.md", "repl.md", "templates.md", "entropy.md", "experiments.md", "remote.md",
         "reliability.md", "python-api.md", "numerics.md")


def test_the_generated_parts_of_docs_match_the_code():
    stale = regenerate()
    assert not stale, f"out of date: {', '.join(stale)} (run: python -m harness.cli.docs)"
    assert {page for page, _ in SECTIONS.values()} <= set(PAGES)


def _help(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_command_and_flag_harness_help_prints_is_in_the_cli_page(capsys):
    page = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = re.findall(r"^    ([a-z]+)\b", _help(capsys), re.M)  # the COMMAND listing
    assert len(commands) == 14
    missing = []
    for command in ["", *commands]:
        printed = _help(capsys, *([command] if command else []))
        if command and f"### harness {command}\n" not in page:
            missing.append(f"harness {command}")
        # options as the usage line and the options list print them (not dashes inside help text)
        flags = set(re.findall(r"(?:^\s+|\[|, |\| )(--?[a-zA-Z][\w-]*)", printed, re.M)) - {"-h", "--help"}
        section = page.split(f"### harness {command}\n", 1)[-1].split("\n### ", 1)[0] if command else page
        missing += [f"harness {command} {flag}".replace("  ", " ") for flag in sorted(flags)
                    if f"`{flag}`" not in section]
    assert missing == []


def test_the_readme_is_a_front_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "./dev chat" in readme and "./dev test" in readme
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert {f"docs/{page}" for page in PAGES} <= set(links)
    for link in links:
        if not link.startswith("http"):
            assert (REPO / link).exists(), link


def test_links_between_pages_resolve():
    for page in PAGES:
        text = (REPO / "docs" / page).read_text(encoding="utf-8")
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not link.startswith("http"):
                assert (REPO / "docs" / link).exists(), (page, link)


def test_the_settings_and_repl_tables_name_everything():
    from harness.chat.slash import COMMANDS
    from harness.generation.settings import SETTINGS

    cli = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    repl = (REPO / "docs" / "repl.md").read_text(encoding="utf-8")
    assert all(f"| `{s.name}` |" in cli for s in SETTINGS)
    assert all(f"`{c.usage.replace('|', chr(92) + '|')}`" in repl for c in COMMANDS)
    parser = build_parser()
    assert parser.prog == "harness"


def test_each_subpackage_describes_its_layout():
    """Every module of a subpackage is named in its __init__ docstring (the layout cannot drift)."""
    import ast

    missing = []
    for init in sorted((REPO / "harness").glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        for module in sorted(init.parent.iterdir()):
            name = module.name if module.is_dir() else module.stem
            if module.name.startswith("_") or module.name == "__pycache__" or \
                    not (module.suffix == ".py" or (module / "__init__.py").exists()):
                continue
            if not re.search(rf"\b{re.escape(name)}(\.py|/)", doc):
                missing.append(f"{init.parent.name}/{module.name}")
    assert missing == []
