"""Fixed-text cells: a conversation scored teacher-forced (no sampling) under a condition.

Mode ``score`` renders the conversation as it is (mode as-is) and stores every token's
statistics as the cell's prompt tokens (no generated tokens, text empty, stop reason
``scored``); ``{score: swap_roles}`` first swaps user and assistant in every message, so the same
content is read once as the user's and once as the assistant's while everything else holds.
Content stays fixed while role, template or model changes; `summary --compare A B --swapped`
then pairs each conversation's user text with the same text as assistant.
"""

from __future__ import annotations

import time
from typing import Any

from harness.experiment.spec import SCORE_OPTIONS
from harness.generation.records import tokens_json
from harness.generation.workbench import BaseWorkbench
from harness.prompt.conversation import ASSISTANT, USER, Conversation, Message

SWAP_ROLES = SCORE_OPTIONS[0]
SCORED = "scored"  # the stop reason of a fixed-text cell
_SWAP = {USER: ASSISTANT, ASSISTANT: USER}


def swap_roles(conversation: Conversation) -> Conversation:
    """User messages become assistant messages and the other way round; others unchanged."""
    return Conversation(tuple(Message(_SWAP.get(m.role, m.role), m.content, m.extra) for m in conversation))


def score_turn(bench: BaseWorkbench, conversation: Conversation, *, mode_label: str,
               option: str = "") -> dict[str, Any]:
    """What the database stores of a fixed-text cell (token dicts as `score --json` gives them)."""
    if option == SWAP_ROLES:
        conversation = swap_roles(conversation)
    started = time.perf_counter()
    plan, tokens = bench.score(conversation)
    return {"mode": mode_label, "writer": None, "prompt": plan.prompt, "text": "", "stop_reason": SCORED,
            "prompt_tokens": tokens_json(tokens, bench.piece_text), "tokens": [],
            "prompt_seconds": time.perf_counter() - started, "seconds": 0.0}
