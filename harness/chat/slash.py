"""REPL slash commands: their names, usage and help, and the one pure parser of command lines.

The registry is data; the topic modules map each name to a handler. A line that does not start
with ``/`` is a user message, sent as typed (``//text`` sends a message that starts with a
slash). A command name may be abbreviated to a unique prefix. Arguments are split as a shell
splits words (quotes group, backslash escapes). A command's trailing free text (a message, a
prefill, a system prompt) is taken as typed from its first non-blank character to the end of
the line, trailing spaces and newlines included — unless it is one quoted word, which is
unquoted. One rule for escapes: inside double quotes ``\\n`` ``\\t`` ``\\r`` ``\\"`` ``\\\\`` are a
newline, a tab, a carriage return, a quote and a backslash; anywhere else a backslash is what
was typed (in free text) or escapes the next character (in words).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from harness.errors import CommandError


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str
    example: str = ""
    topic: str = "chat"
    aliases: tuple[str, ...] = ()


C = SlashCommand
COMMANDS: tuple[SlashCommand, ...] = (
    C("help", "/help [COMMAND|colours]", "list commands, or describe one (/help set lists the settings; "
      "/help colours what the colours and marks mean)", "/help branch"),
    C("new", "/new", "start a fresh conversation (settings, model and template kept; /undo goes back)",
      "/new"),
    C("reply", "/reply", "generate an assistant turn for the conversation as it stands", "/reply"),
    C("impersonate", "/impersonate [TEXT]", "open a user turn (begun with TEXT) and let the model write it",
      "/impersonate Actually,"),
    C("prefill", "/prefill TEXT", "generate an assistant turn that starts with TEXT", "/prefill Sure! Here"),
    C("continue", "/continue", "continue the last message, whatever its role", "/continue"),
    C("adopt", "/adopt", "after a run past end of turn: the user turn the model wrote becomes the next "
      "user message", "/adopt"),
    C("retry", "/retry [same] [N]", "another candidate for the last generated turn (earlier ones are kept); "
      "a fixed seed moves on unless `same`; N: that many, decoded together and shown side by side, a key "
      "keeps one; one /undo takes the retry back", "/retry 4", "branches"),
    C("swipe", "/swipe [next [N]|prev|K] [--at N]", "show every candidate of the last message (or of message "
      "N) side by side, or choose one; next past the last generates one (next N: N at once)",
      "/swipe 2 --at 3", "branches"),
    C("branch", "/branch K ALT", "rewind the inspected turn to token K, force an alternative (rank from "
      "/alts or token text) and go on; both branches are kept", "/branch 3 2", "branches"),
    C("tokens", "/tokens [N]", "the turn that made message N (default: the last) token by token, "
      "shaded by entropy", "/tokens 2", "inspect"),
    C("step", "/step [N]", "walk the turn that made message N (default: the last) with the arrow keys: "
      "Left/Right a token, Up/Down an alternative, Enter branches from it (/branch K RANK), Esc leaves",
      "/step", "inspect"),
    C("alts", "/alts K", "top alternatives and their probabilities at token K of the inspected turn "
      "(the last generated one unless /tokens N chose another)", "/alts 3", "inspect"),
    C("raw", "/raw [as-is|impersonate]", "show the exact prompt of the next reply, special tokens visible",
      "/raw", "inspect"),
    C("entropy", "/entropy", "per-role entropy of the last turn and of the session", "/entropy", "inspect"),
    C("messages", "/messages", "list the conversation with indexes (* generated, k/n alternatives)",
      "/messages", "edit"),
    C("show", "/show N", "print message N whole", "/show 2", "edit"),
    C("edit", "/edit N [TEXT|--editor]", "edit message N: inline (prefilled), in $EDITOR, or set TEXT",
      "/edit 1 --editor", "edit"),
    C("delete", "/delete N", "delete message N (the messages after it stay)", "/delete 2", "edit"),
    C("role", "/role N ROLE", "change the role of message N", "/role 2 user", "edit"),
    C("insert", "/insert N ROLE TEXT", "insert a message at position N", "/insert 1 user Hello there",
      "edit"),
    C("undo", "/undo", "undo the last change to the conversation", "/undo", "edit"),
    C("redo", "/redo", "redo what /undo undid", "/redo", "edit"),
    C("eos", "/eos [stop|continue|ban]", "show the EOS policy, or: end at end-of-turn, run past it, or "
      "ban it", "/eos continue",
      "settings"),
    C("bias", "/bias [TOKEN VALUE|TOKEN off|off]", "list logit biases, add one (a token's text, or #ID "
      "for an id; -inf bans), remove one, or remove all", '/bias "<|im_end|>" -5', "settings"),
    C("template", "/template [gguf|NAME|PATH]", "show the template, or switch (conversation kept; "
      "checked by lint first)", "/template chatml", "settings"),
    C("model", "/model [NAME|PATH [TEMPLATE]]", "show the model, or switch model, optionally with a template (conversation "
      "kept)", "/model gemma3-270m raw", "settings"),
    C("profile", "/profile [NAME]", "switch profile live (model, template, sampling; conversation kept)",
      "/profile gemma3-base", "settings"),
    C("system", "/system [TEXT|--clear]", "show the system prompt, set it, or remove it",
      "/system Be terse.", "settings"),
    C("set", "/set [KEY [VALUE]]", "show all settings, show one, or change one (/help set lists the "
      "keys)", "/set temperature 0.3", "settings"),
    C("shade", "/shade [on|off]", "show or set the entropy shading of streamed tokens", "/shade off", "settings"),
    C("save", "/save FILE", "save conversation and settings as JSON", "/save chat.json", "files"),
    C("load", "/load FILE", "load a conversation (messages file or /save output)", "/load chat.json",
      "files"),
    C("export", "/export FILE.md|FILE.json", "Markdown transcript with per-role stats, or the full "
      "session as JSON", "/export chat.md", "files"),
    C("sessions", "/sessions [N]", "list saved sessions (resume one with harness chat --resume ID)",
      "/sessions 5", "files"),
    C("quit", "/quit", "leave (also /exit, /q, Ctrl-D); says where the session was saved", "/quit",
      aliases=("exit", "q")),
)
BY_NAME = {c.name: c for c in COMMANDS}
ALIASES = {alias: c.name for c in COMMANDS for alias in c.aliases}


def parse_line(line: str) -> tuple[str | None, str]:
    """(command name as typed, argument) for a slash command, (None, text) for a message. The
    argument keeps what follows the blank after the name as typed (trailing blanks too)."""
    if line.startswith("//"):
        return None, line[1:]
    if not line.startswith("/"):
        return None, line
    body = line[1:]
    cut = next((i for i, char in enumerate(body) if char.isspace()), len(body))
    return body[:cut].lower(), body[cut:].lstrip()


def resolve(typed: str) -> str:
    """The command a typed name means: the name, an alias, or a unique prefix of one name."""
    if typed in BY_NAME:
        return typed
    if typed in ALIASES:
        return ALIASES[typed]
    matches = [c.name for c in COMMANDS if c.name.startswith(typed)] if typed else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CommandError(f"/{typed} is ambiguous: " + ", ".join("/" + m for m in matches))
    close = difflib.get_close_matches(typed, [*BY_NAME, *ALIASES], n=1, cutoff=0.6)
    hint = f"did you mean /{close[0]}?" if close else "/help lists them"
    raise CommandError(f"unknown command /{typed}", hint=hint)


# -- arguments -----------------------------------------------------------------------------------
QUOTES = "'\""
ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}  # inside double quotes


def _scan(text: str, start: int) -> tuple[str, int, int]:
    """The shell word beginning at or after `start`: (word, where it began, where it ended)."""
    i = start
    while i < len(text) and text[i].isspace():
        i += 1
    begin, word, quote = i, [], ""
    while i < len(text):
        char = text[i]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\" and quote == '"' and i + 1 < len(text) and text[i + 1] in ESCAPES:
                i += 1
                word.append(ESCAPES[text[i]])
            else:
                word.append(char)
        elif char in QUOTES:
            quote = char
        elif char == "\\" and i + 1 < len(text):
            i += 1
            word.append(text[i])
        elif char.isspace():
            break
        else:
            word.append(char)
        i += 1
    if quote:
        raise CommandError(f"unbalanced {quote} in: {text}", hint="close the quote, or escape it with \\")
    return "".join(word), begin, i


def split_words(text: str) -> list[str]:
    """Every word of `text`, split as a shell splits it ("" is an empty word)."""
    words, i = [], 0
    while text[i:].strip():
        word, _, i = _scan(text, i)
        words.append(word)
    return words


def take_words(text: str, count: int, *, trailing: bool = True) -> tuple[list[str], str]:
    """The first `count` shell words of `text` and the free text after them: as typed from its
    first non-blank character (trailing blanks kept unless not `trailing`), or unquoted, escapes
    and all, when it is one quoted word: ``"  two spaces"``, ``"<think>\\n"``."""
    words, rest, unquoted = _take(text, count)
    if unquoted is not None:
        return words, unquoted
    return words, rest if trailing else rest.rstrip()


def free_text(text: str, count: int) -> tuple[list[str], str, str | None]:
    """:func:`take_words`, and a line to show when the free text, taken as typed, holds what
    looks like an escape (``\\n``): it went as a backslash and a letter; quoting makes it the
    character."""
    words, rest, unquoted = _take(text, count)
    if unquoted is not None:
        return words, unquoted, None
    found = next((f"\\{c}" for c in "ntr" if f"\\{c}" in rest), None)
    hint = None if found is None else (f"{found} was sent as typed (a backslash and a letter); "
                                       f'in double quotes it is an escape: "...{found}"')
    return words, rest, hint


def _take(text: str, count: int) -> tuple[list[str], str, str | None]:
    """(words, the rest as typed, the rest unquoted when it is one quoted word, else None)."""
    words, i = [], 0
    while len(words) < count and text[i:].strip():
        word, _, i = _scan(text, i)
        words.append(word)
    rest = text[i:].lstrip()
    bare = rest.rstrip()
    if bare and bare[0] in QUOTES and bare[-1] == bare[0] and len(bare) >= 2:
        try:
            whole = split_words(bare)
        except CommandError:
            whole = []
        if len(whole) == 1 and _scan(bare, 0)[2] == len(bare):
            return words, rest, whole[0]
    return words, rest, None


def plural(count: int, noun: str) -> str:
    """`count` `noun`s: "1 message", "3 messages"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def quote(word: str) -> str:
    """`word` as one argument for this parser."""
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def options(words: list[str], *names: str) -> tuple[list[str], dict[str, str | bool]]:
    """Positional words and `--name [VALUE]` options (a name ending in = takes a value)."""
    positional: list[str] = []
    found: dict[str, str | bool] = {}
    flags = {n.rstrip("="): n.endswith("=") for n in names}
    i = 0
    while i < len(words):
        word = words[i]
        name = word[2:] if word.startswith("--") else None
        if name in flags:
            if flags[name]:
                if i + 1 >= len(words):
                    raise CommandError(f"--{name} needs a value")
                found[name] = words[i + 1]
                i += 1
            else:
                found[name] = True
        else:
            positional.append(word)
        i += 1
    return positional, found


def help_text(name: str = "") -> str:
    if name:
        command = BY_NAME.get(name.lstrip("/"))
        if command is None:
            return f"no command /{name}"
        example = f"\n  example: {command.example}" if command.example else ""
        return f"{command.usage}\n  {command.help}{example}"
    width = max(len(c.usage) for c in COMMANDS)
    lines = []
    for topic in dict.fromkeys(c.topic for c in COMMANDS):
        lines.append(f"{topic}:")
        lines += [f"  {c.usage:{width}}  {c.help}" for c in COMMANDS if c.topic == topic]
    lines.append("/help COMMAND shows an example; a unique prefix is enough (/mess); quote arguments "
                 'with spaces ("like this").')
    lines.append("A line without a slash is a user message; the model replies (mode reply). "
                 "/help colours: what the colours and marks mean.")
    return "\n".join(lines)
