"""What a model does past its own end of turn: continue the conversation, or start a new one.

A past-eos turn's generated tokens carry the roles the turn parser gave them. After the model's
own turn (its first content role) what comes next decides: a system turn -> a new conversation
begins (``new_conversation``; usually an empty or memorised system turn, then a memorised task).
An empty system turn has no content tokens, so it is recognised in the scaffolding: a template
token spelling the word ``system`` (ChatML's ``<|im_start|>system``, Llama-3's header) before the
next content. Otherwise the next content role: ``user`` -> it writes the other side of this
conversation (``continues``); its own role again -> ``same_role_again``; none -> ``nothing`` (it
stopped, or the token budget ran out inside its own turn).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from harness.prompt.conversation import SYSTEM, TEMPLATE, USER

CONTINUES, NEW_CONVERSATION, SAME_ROLE_AGAIN, NOTHING = "continues", "new_conversation", "same_role_again", "nothing"
CLASSES = (CONTINUES, NEW_CONVERSATION, SAME_ROLE_AGAIN, NOTHING)


def classify(tokens: Sequence[tuple[str, str]]) -> str:
    """The class of one past-eos turn from its generated tokens' (role, piece), in order."""
    turns: list[str] = []  # content runs; scaffolding between two runs of one role makes two turns
    last, broken = None, False
    for role, piece in tokens:
        if role == TEMPLATE:
            broken = True
            if turns and piece.strip().lower() == SYSTEM:
                turns.append(SYSTEM)
            continue
        if role != last or broken:
            turns.append(role)
        last, broken = role, False
    if len(turns) < 2:
        return NOTHING
    own, following = turns[0], turns[1]
    if following == USER and own != USER:
        return CONTINUES
    if following == SYSTEM:
        return NEW_CONVERSATION
    if following == own:
        return SAME_ROLE_AGAIN
    return CONTINUES


def class_counts(classes: Iterable[str]) -> dict[str, int]:
    """Counts of each class over turns' classes (every class present, zero or not)."""
    counts = Counter(classes)
    return {c: counts.get(c, 0) for c in CLASSES}
