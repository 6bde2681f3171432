"""Completion for the REPL: command names, then each command's argument (template, profile and
model names, file paths, settings keys, swipe directions)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from harness.chat.slash import COMMANDS
from harness.generation.settings import EOS_POLICIES


def _templates() -> list[str]:
    from harness.paths import user_templates_dir
    from harness.prompt.templates import list_library

    user = sorted(p.stem for p in user_templates_dir().glob("*.jinja")) if user_templates_dir().is_dir() else []
    return ["gguf", *list_library(), *user]


def _profiles() -> list[str]:
    from harness.generation.profiles import list_profiles

    return list_profiles()


def _models() -> list[str]:
    from harness.models.registry import KNOWN_MODELS

    return sorted(KNOWN_MODELS)


def _settings() -> list[str]:
    from harness.chat.commands.configure import settings_rows
    from harness.repl.prefs import SWITCHES

    return [k.replace("NAME", "") for k, _ in settings_rows({s.name: s.help for s in SWITCHES})]


WORDS: dict[str, Callable[[], Iterable[str]]] = {
    "template": _templates, "profile": _profiles, "model": _models, "set": _settings,
    "help": lambda: [c.name for c in COMMANDS], "eos": lambda: list(EOS_POLICIES),
    "swipe": lambda: ["next", "prev"], "shade": lambda: ["on", "off"],
    "raw": lambda: ["as-is", "impersonate"],
}
PATHS = {"load", "save", "export", "model", "template", "profile"}


class HarnessCompleter(Completer):
    def __init__(self) -> None:
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        if " " not in text:
            for command in COMMANDS:
                if command.name.startswith(text[1:]):
                    yield Completion("/" + command.name, -len(text), display_meta=command.help[:40])
            return
        name, _, arg = text[1:].partition(" ")
        if " " in arg:
            return
        words = WORDS.get(name)
        seen = set()
        for word in (words() if words else ()):
            if word.startswith(arg):
                seen.add(word)
                yield Completion(word, -len(arg))
        if name in PATHS and (arg.startswith(("/", ".", "~")) or not seen):
            sub = Document(arg, len(arg))
            yield from self.paths.get_completions(sub, complete_event)
