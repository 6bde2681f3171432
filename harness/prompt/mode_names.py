"""The prompt modes (kept apart so the CLI can offer them without importing Jinja)."""

from enum import StrEnum


class Mode(StrEnum):
    """What the next turn is: the strings are the CLI's and the JSON's."""

    AS_IS = "as-is"
    REPLY = "reply"
    PREFILL = "prefill"
    IMPERSONATE = "impersonate"
    CONTINUE = "continue"


AS_IS = Mode.AS_IS
REPLY = Mode.REPLY
PREFILL = Mode.PREFILL
IMPERSONATE = Mode.IMPERSONATE
CONTINUE = Mode.CONTINUE
MODES = tuple(Mode)
