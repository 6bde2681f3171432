"""The conversations of an experiment: inline, from messages files, or from a glob of them.

An entry is ``{name, messages}``, ``{file}`` (a messages file, relative to the experiment; name =
the file's stem) or ``{glob}`` (every matching file, sorted, each named by its stem; at most
MAX_GLOB_FILES). Any entry may add:

- ``modes: [...]``: the experiment's modes it runs in (default: all);
- ``end_with: user``: drop the messages after its last user message, so one set of complete
  conversations serves both ``reply`` (the model answers the last user turn) and
  ``impersonate`` (the model writes the user's next turn after the last assistant turn);
- ``before: [messages]``: put these messages before its first non-system message (a greeting,
  say), so one set of texts runs in several setups.

Two entries may give a conversation the same name when their modes do not overlap: cells are
keyed by conversation and mode, and the summary pairs conditions by conversation name.
Multiple-choice ``items:`` become conversations run in mode ``choice`` only.
"""

from __future__ import annotations

import glob as globbing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.experiment.schema import Schema
from harness.prompt.conversation import SYSTEM, USER, Conversation, parse_messages

MAX_GLOB_FILES = 10_000
END_WITH = (USER,)
_CONVERSATION: dict[str, tuple[type, ...]] = {"name": (str,), "messages": (list,), "file": (str,), "glob": (str,),
                                              "modes": (list,), "end_with": (str,), "before": (list,)}
_ITEM: dict[str, tuple[type, ...]] = {"name": (str,), "question": (str,), "options": (list,), "answer": (str, int),
                                      "file": (str,)}


@dataclass(frozen=True)
class ConversationSpec:
    name: str
    conversation: Conversation
    modes: tuple[str, ...] | None = None  # mode labels it is run in (None: every mode)
    item: bool = False  # a multiple-choice item: run in mode choice only


def parse_conversations(schema: Schema, items: list[Any], base: Path,
                        mode_labels: tuple[str, ...]) -> tuple[ConversationSpec, ...]:
    if not items:
        raise schema.fail("conversations", "must not be empty")
    out: list[ConversationSpec] = []
    for i, item in enumerate(items):
        path = f"conversations[{i}]"
        if isinstance(item, str):
            item = {"file": item}
        entry = schema.fields(item, path, _CONVERSATION)
        if sum(key in entry for key in ("messages", "file", "glob")) != 1:
            raise schema.fail(path, "give one of 'messages' (inline), 'file' (a messages file) or 'glob' "
                                    "(messages files)")
        if "glob" in entry and "name" in entry:
            raise schema.fail(f"{path}.name", "a glob names each conversation by its file")
        modes = _only_modes(schema, entry, path, mode_labels)
        before = _before(schema, entry, path)
        for name, conversation in _sources(schema, entry, path, base, i):
            conversation = _shaped(schema, entry, path, conversation, before)
            out.append(ConversationSpec(name, conversation, modes))
    _unique(schema, out, mode_labels)
    return tuple(out)


def _sources(schema: Schema, entry: dict[str, Any], path: str, base: Path, i: int) -> list[tuple[str, Conversation]]:
    """(name, conversation) of an entry: one, or one per file of a glob."""
    if "messages" in entry:
        line = schema.lines.get(f"{path}.messages")
        return [(entry.get("name") or f"c{i + 1}",
                 Conversation.from_dicts(entry["messages"], where=f"{schema.where}:{line}"))]
    if "file" in entry:
        file = base / entry["file"]
        return [(entry.get("name") or file.stem, _read(schema, f"{path}.file", file))]
    files = sorted(Path(p) for p in globbing.glob(str(base / entry["glob"])) if Path(p).is_file())
    if not files:
        raise schema.fail(f"{path}.glob", f"matches no file under {base}")
    if len(files) > MAX_GLOB_FILES:
        raise schema.fail(f"{path}.glob", f"matches {len(files)} files (at most {MAX_GLOB_FILES})")
    return [(file.stem, _read(schema, f"{path}.glob", file)) for file in files]


def _read(schema: Schema, path: str, file: Path) -> Conversation:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise schema.fail(path, f"cannot read {file}: {exc.__class__.__name__}") from None
    return parse_messages(text, where=str(file))


def _before(schema: Schema, entry: dict[str, Any], path: str) -> Conversation | None:
    if "before" not in entry:
        return None
    line = schema.lines.get(f"{path}.before")
    return Conversation.from_dicts(entry["before"], where=f"{schema.where}:{line}")


def _shaped(schema: Schema, entry: dict[str, Any], path: str, conversation: Conversation,
            before: Conversation | None) -> Conversation:
    """`end_with` and `before` applied; a conversation left empty is an error."""
    messages = list(conversation)
    end = entry.get("end_with")
    if end is not None:
        if end not in END_WITH:
            raise schema.fail(f"{path}.end_with", f"must be one of {', '.join(END_WITH)}")
        last = max((k for k, m in enumerate(messages) if m.role == end), default=None)
        if last is None:
            raise schema.fail(f"{path}.end_with", f"a conversation has no {end} message")
        messages = messages[:last + 1]
    if before is not None:
        at = next((k for k, m in enumerate(messages) if m.role != SYSTEM), len(messages))
        messages = messages[:at] + list(before) + messages[at:]
    if not messages:
        raise schema.fail(path, "the conversation has no messages")
    return Conversation(tuple(messages))


def _unique(schema: Schema, specs: list[ConversationSpec], mode_labels: tuple[str, ...]) -> None:
    """Two conversations may share a name only when the modes they run in do not overlap."""
    seen: dict[str, set[str]] = {}
    for spec in specs:
        modes = set(spec.modes if spec.modes is not None else mode_labels)
        if modes & seen.get(spec.name, set()):
            raise schema.fail("conversations", f"two conversations named {spec.name!r} run in the same mode "
                                               "(set 'name', or give them disjoint 'modes')")
        seen.setdefault(spec.name, set()).update(modes)


def _only_modes(schema: Schema, entry: dict[str, Any], path: str, labels: tuple[str, ...]) -> tuple[str, ...] | None:
    """A conversation's own `modes:` list (e.g. impersonate only after an assistant turn)."""
    if "modes" not in entry:
        return None
    for i, label in enumerate(entry["modes"]):
        if label not in labels:
            raise schema.fail(f"{path}.modes[{i}]", f"not one of the experiment's modes ({', '.join(labels)})")
    return tuple(entry["modes"])


def parse_items(schema: Schema, items: list[Any], base: Path) -> tuple[ConversationSpec, ...]:
    """`items:` entries ({question, options, answer} or {file: a YAML list of them}) as
    conversations run in mode choice only."""
    out = []
    for i, entry in enumerate(items):
        path = f"items[{i}]"
        entry = schema.fields(entry, path, _ITEM)
        if "file" in entry:
            file = base / entry["file"]
            try:
                listed = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise schema.fail(f"{path}.file", f"cannot read {file}: {exc.__class__.__name__}") from None
            inner = Schema(str(file), {})
            out += [_item_spec(inner, item, f"{file.stem}[{k}]", f"{file.stem}-{k + 1}") for k, item in enumerate(listed or [])]
        else:
            out.append(_item_spec(schema, entry, path, f"item-{i + 1}"))
    if len({c.name for c in out}) != len(out):
        raise schema.fail("items", "two items share a name (set 'name')")
    return tuple(out)


def _item_spec(schema: Schema, entry: Any, path: str, default_name: str) -> ConversationSpec:
    from harness.experiment.choice import LETTERS, Item

    entry = schema.fields(entry, path, _ITEM)
    for key in ("question", "options", "answer"):
        if key not in entry:
            raise schema.fail(path, f"an item needs 'question', 'options' and 'answer' (missing '{key}')")
    options = entry["options"]
    if not 2 <= len(options) <= len(LETTERS) or not all(isinstance(o, str) for o in options):
        raise schema.fail(f"{path}.options", f"expected 2 to {len(LETTERS)} option strings")
    answer = entry["answer"]
    index = LETTERS.find(answer) if isinstance(answer, str) else answer
    if not (isinstance(index, int) and 0 <= index < len(options)) or (isinstance(answer, str) and len(answer) != 1):
        raise schema.fail(f"{path}.answer", f"expected a letter A-{LETTERS[len(options) - 1]} or an option index")
    name = entry.get("name", default_name)
    item = Item(name, entry["question"], tuple(options), index)
    return ConversationSpec(name, item.conversation(), None, item=True)


