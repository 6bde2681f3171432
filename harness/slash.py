"""REPL slash commands: their names, usage and help, and the pure line parser.

The registry is data; the session maps each name to a method. A line that does not start with
``/`` is a user message (``//text`` sends a message that starts with a slash).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("help", "/help [COMMAND]", "list commands, or describe one"),
    SlashCommand("reply", "/reply", "generate an assistant turn for the conversation as it stands"),
    SlashCommand("impersonate", "/impersonate [TEXT]", "open a user turn (begun with TEXT) and let the model write it"),
    SlashCommand("prefill", "/prefill TEXT", "generate an assistant turn that starts with TEXT"),
    SlashCommand("continue", "/continue", "continue the last message, whatever its role"),
    SlashCommand("eos", "/eos stop|continue|ban", "end at end-of-turn, run past it, or ban it"),
    SlashCommand("bias", "/bias TOKEN VALUE|off", "add a logit bias (token text or id; -inf bans); off removes"),
    SlashCommand("template", "/template gguf|NAME|PATH", "switch chat template (conversation kept)"),
    SlashCommand("model", "/model NAME|PATH", "switch model (conversation kept)"),
    SlashCommand("system", "/system [TEXT]", "set the system prompt (empty removes it)"),
    SlashCommand("set", "/set [KEY VALUE]", "change a setting (no argument: show all)"),
    SlashCommand("raw", "/raw", "show the exact prompt of the next reply, special tokens visible"),
    SlashCommand("entropy", "/entropy", "per-role entropy of the last turn and of the session"),
    SlashCommand("undo", "/undo", "remove the last message"),
    SlashCommand("retry", "/retry", "regenerate the last generated turn"),
    SlashCommand("save", "/save FILE", "save conversation and settings as JSON"),
    SlashCommand("load", "/load FILE", "load a conversation (messages file or /save output)"),
    SlashCommand("quit", "/quit", "leave (Ctrl-D does the same)"),
)
BY_NAME = {c.name: c for c in COMMANDS}


def parse_line(line: str) -> tuple[str | None, str]:
    """(command name, argument) for a slash command, (None, text) for a message."""
    if line.startswith("//"):
        return None, line[1:]
    if not line.startswith("/"):
        return None, line
    name, _, arg = line[1:].partition(" ")
    return name.strip().lower(), arg.strip()


def help_text(name: str = "") -> str:
    if name:
        command = BY_NAME.get(name.lstrip("/"))
        return f"{command.usage}\n  {command.help}" if command else f"no command /{name}"
    width = max(len(c.usage) for c in COMMANDS)
    lines = [f"{c.usage:{width}}  {c.help}" for c in COMMANDS]
    lines.append("A line without a slash is a user message; the model replies (mode reply).")
    return "\n".join(lines)
