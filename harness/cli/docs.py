"""The parts of docs/ whose truth is the code: the CLI reference (from the argparse parser), the
REPL's command table (from the command registry) and the settings tables (from SETTINGS and the
/set keys). Each sits in its page between marker lines; ``python -m harness.cli.docs`` writes them
again, ``--check`` only says which differ (tests/test_docs.py runs the check).

    <!-- generated: NAME (python -m harness.cli.docs) -->
    ...
    <!-- end generated: NAME -->
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
WIDTH = 100


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of every subcommand, in the parser's order."""
    for action in parser._actions:  # argparse keeps its actions private; this module reads them
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _option_row(action: argparse.Action) -> str:
    names = ", ".join(f"`{n}`" for n in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        value = "|".join(str(c) for c in action.choices)
    elif action.nargs == 0:
        value = ""
    else:
        metavar = action.metavar if action.metavar is not None else action.dest.upper()
        value = " ".join(metavar) if isinstance(metavar, tuple) else str(metavar)
    notes = []
    if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
        notes.append("repeatable")
    if action.required and action.option_strings:
        notes.append("required")
    help_text = action.help or ""
    if notes:
        help_text = f"{help_text} ({', '.join(notes)})" if help_text else ", ".join(notes)
    return f"| {names} | {_cell(f'`{value}`' if value else '')} | {_cell(help_text)} |"


def cli_reference() -> str:
    """Every command of `harness` with its usage and every option `harness CMD --help` lists."""
    from harness.cli.main import build_parser

    parser = build_parser()
    lines = ["```text", _usage(parser), "```", "", "| option | value | meaning |", "|---|---|---|"]
    lines += [_option_row(a) for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    lines += ["", "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#harness-{name}) | {_cell(text)} |" for name, text, _ in _subcommands(parser)]
    for name, text, sub in _subcommands(parser):
        lines += ["", f"### harness {name}", "", text[:1].upper() + text[1:] + ".", "", "```text",
                  _usage(sub), "```", "", "| option | value | meaning |", "|---|---|---|"]
        lines += [_option_row(a) for a in sub._actions if not isinstance(a, argparse._HelpAction)]
    return "\n".join(lines)


def settings_table() -> str:
    """The sampling settings, declared once in harness.generation.settings.SETTINGS."""
    from harness.generation.settings import SETTINGS, SamplingParams, describe_types

    defaults = SamplingParams()
    lines = ["| setting | flag | value | rule | default | meaning |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        flag = f"`--{s.name.replace('_', '-')}`" if s.flag else "`--bias TOKEN=VALUE`"
        default = getattr(defaults, s.name)
        shown = "random" if s.name == "seed" and default is None else list(default) if s.name == "stop" \
            else dict(default) if s.name == "logit_bias" else default
        lines.append(f"| `{s.name}` | {flag} | {describe_types(s.types)} | {_cell(s.rule)} | `{shown}` | "
                     f"{_cell(s.help)} |")
    return "\n".join(lines)


def repl_commands() -> str:
    """Every slash command: usage, example, what it does (harness.chat.slash.COMMANDS)."""
    from harness.chat.slash import COMMANDS

    lines = ["| command | example | what it does |", "|---|---|---|"]
    for c in COMMANDS:
        aliases = f" ({', '.join('`/' + a + '`' for a in c.aliases)})" if c.aliases else ""
        lines.append(f"| `{_cell(c.usage)}`{aliases} | `{_cell(c.example)}` | {_cell(c.help)} |")
    return "\n".join(lines)


def repl_settings() -> str:
    """Every /set key (harness.chat.commands.configure, with the REPL's own switches)."""
    from harness.chat.commands.configure import settings_rows
    from harness.repl.prefs import SWITCHES

    lines = ["| key | what it takes |", "|---|---|"]
    lines += [f"| `{key}` | {_cell(text)} |" for key, text in settings_rows({s.name: s.help for s in SWITCHES})]
    return "\n".join(lines)


SECTIONS: dict[str, tuple[str, Callable[[], str]]] = {
    "cli-reference": ("cli.md", cli_reference),
    "settings": ("cli.md", settings_table),
    "repl-commands": ("repl.md", repl_commands),
    "repl-settings": ("repl.md", repl_settings),
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {re.escape(name)} [^\n]*-->\n)(.*?)(<!-- end generated: {re.escape(name)} -->)",
                      re.S)


def regenerate(docs: Path = DOCS) -> dict[str, tuple[str, str]]:
    """Each page whose generated parts differ from the code: name -> (as written, as generated)."""
    pages: dict[str, str] = {}
    for name, (page, make) in SECTIONS.items():
        text = pages.get(page) or (docs / page).read_text(encoding="utf-8")
        found = _block(name).search(text)
        if found is None:
            raise SystemExit(f"{page}: no generated block '{name}'")
        pages[page] = text[:found.start(2)] + make() + "\n" + text[found.end(2):]
    return {page: ((docs / page).read_text(encoding="utf-8"), text) for page, text in pages.items()
            if (docs / page).read_text(encoding="utf-8") != text}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not DOCS.is_dir():
        print(f"no docs/ at {DOCS}: the generated pages live in a source checkout", file=sys.stderr)
        return 1
    changed = regenerate()
    for page, (_, text) in changed.items():
        if "--check" in argv:
            print(f"docs/{page} is out of date: python -m harness.cli.docs")
        else:
            (DOCS / page).write_text(text, encoding="utf-8")
            print(f"wrote docs/{page}")
    return 1 if changed and "--check" in argv else 0


if __name__ == "__main__":
    raise SystemExit(main())
