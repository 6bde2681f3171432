"""REPL slash commands: their names, usage and help, and the pure line parser.

The registry is data; the session_* topic modules map each name to a handler. A line that does not start with
``/`` is a user message (``//text`` sends a message that starts with a slash).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlashCommand:
    name: str
    usage: str
    help: str
    example: str = ""
    topic: str = "chat"


C = SlashCommand
COMMANDS: tuple[SlashCommand, ...] = (
    C("help", "/help [COMMAND]", "list commands, or describe one", "/help branch"),
    C("reply", "/reply", "generate an assistant turn for the conversation as it stands"),
    C("impersonate", "/impersonate [TEXT]", "open a user turn (begun with TEXT) and let the model write it",
      "/impersonate Actually,"),
    C("prefill", "/prefill TEXT", "generate an assistant turn that starts with TEXT", "/prefill Sure! Here"),
    C("continue", "/continue", "continue the last message, whatever its role"),
    C("retry", "/retry [N]", "another candidate (N: that many, decoded together) for the last generated turn (earlier ones are kept)", "/retry 4",
      "branches"),
    C("swipe", "/swipe next [N]|prev|N", "choose among the candidates of the last message; next past the "
      "last generates one (next N: N at once)", "/swipe 2", "branches"),
    C("branch", "/branch K ALT", "rewind the inspected turn to token K, force an alternative (rank from "
      "/alts or token text) and go on; both branches are kept", "/branch 3 2", "branches"),
    C("tokens", "/tokens [N]", "the turn that made message N (default: the last) token by token, "
      "shaded by entropy", "/tokens 2", "inspect"),
    C("alts", "/alts K", "top alternatives and their probabilities at token K of the inspected turn",
      "/alts 3", "inspect"),
    C("raw", "/raw [as-is|impersonate]", "show the exact prompt of the next reply, special tokens visible",
      "/raw", "inspect"),
    C("entropy", "/entropy", "per-role entropy of the last turn and of the session", "", "inspect"),
    C("messages", "/messages", "list the conversation with indexes (* generated, k/n alternatives)",
      "", "edit"),
    C("edit", "/edit N [TEXT|--editor]", "edit message N: inline (prefilled), in $EDITOR, or set TEXT",
      "/edit 1 --editor", "edit"),
    C("delete", "/delete N", "delete message N (the messages after it stay)", "/delete 2", "edit"),
    C("role", "/role N ROLE", "change the role of message N", "/role 2 user", "edit"),
    C("insert", "/insert N ROLE TEXT", "insert a message at position N", "/insert 1 user Hello there",
      "edit"),
    C("undo", "/undo", "undo the last change to the conversation", "", "edit"),
    C("redo", "/redo", "redo what /undo undid", "", "edit"),
    C("eos", "/eos stop|continue|ban", "end at end-of-turn, run past it, or ban it", "/eos continue",
      "settings"),
    C("bias", "/bias TOKEN VALUE|off", "add a logit bias (token text or id; -inf bans); off removes",
      "/bias <|im_end|> -5", "settings"),
    C("template", "/template gguf|NAME|PATH", "switch chat template (conversation kept)",
      "/template chatml", "settings"),
    C("model", "/model NAME|PATH", "switch model (conversation kept)", "/model gemma3-270m", "settings"),
    C("profile", "/profile [NAME]", "switch profile live (model, template, sampling; conversation kept)",
      "/profile gemma3-base", "settings"),
    C("system", "/system [TEXT]", "set the system prompt (empty removes it)", "/system Be terse.",
      "settings"),
    C("set", "/set [KEY VALUE]", "change a setting (no argument: show all); also shade, multiline, vi "
      "on|off", "/set temperature 0.3", "settings"),
    C("shade", "/shade [on|off]", "shade streamed tokens by entropy", "/shade off", "settings"),
    C("save", "/save FILE", "save conversation and settings as JSON", "/save chat.json", "files"),
    C("load", "/load FILE", "load a conversation (messages file or /save output)", "/load chat.json",
      "files"),
    C("export", "/export FILE.md|FILE.json", "Markdown transcript with per-role stats, or the full "
      "session as JSON", "/export chat.md", "files"),
    C("sessions", "/sessions [N]", "list saved sessions (resume one with harness chat --resume ID)",
      "", "files"),
    C("quit", "/quit", "leave (Ctrl-D does the same); the session is saved"),
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
        if command is None:
            return f"no command /{name}"
        example = f"\n  example: {command.example}" if command.example else ""
        return f"{command.usage}\n  {command.help}{example}"
    width = max(len(c.usage) for c in COMMANDS)
    lines = []
    for topic in dict.fromkeys(c.topic for c in COMMANDS):
        lines.append(f"{topic}:")
        lines += [f"  {c.usage:{width}}  {c.help}" for c in COMMANDS if c.topic == topic]
    lines.append("/help COMMAND shows an example.")
    lines.append("A line without a slash is a user message; the model replies (mode reply).")
    return "\n".join(lines)
