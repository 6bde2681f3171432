"""Multiple-choice items: answers read from the probabilities of the option letters.

An item (question, options, answer) becomes one user message: the question, the options as
``A. ...`` lines and "Answer with the letter of the correct option."; the assistant turn is
opened with ``Answer:`` and the model's next-token distribution there is read, not sampled.
Each letter's probability is the sum over its spellings (``B`` and `` B``); the letters'
probabilities renormalised over the options give the chosen letter (the most probable), the
confidence (its share) and whether it is right. ``letter_mass`` is how much of the whole
distribution the letters took (low: the model wanted to say something else).
Per condition: accuracy, ECE and reliability bins of (confidence, right) over the items, with
the floor for its item count (``ece_null``: a perfectly calibrated model answering these items
with these confidences shows that ECE from chance alone) and intervals resampling items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.errors import CommandError
from harness.generation.records import tokens_json
from harness.prompt.conversation import USER, Conversation, Message
from harness.prompt.mode_names import PREFILL
from harness.stats.calibration import calibration

CHOICE = "choice"
LETTERS = "ABCDEFGH"
OPENING = "Answer:"
INSTRUCTION = "Answer with the letter of the correct option."
ANSWER_KEY = "choice_answer"  # message extra: the right letter (the template never reads it)


@dataclass(frozen=True)
class Item:
    name: str
    question: str
    options: tuple[str, ...]
    answer: int  # index into options

    def conversation(self) -> Conversation:
        lines = [self.question, *(f"{LETTERS[i]}. {o}" for i, o in enumerate(self.options)), INSTRUCTION]
        return Conversation((Message(USER, "\n".join(lines), {ANSWER_KEY: LETTERS[self.answer],
                                                            "choice_options": len(self.options)}),))


def letter_probs(logits: np.ndarray, spellings: Sequence[Sequence[int]]) -> tuple[np.ndarray, float]:
    """Per letter the summed probability of its spellings' token ids, renormalised over the
    letters, and the letters' total share of the full distribution."""
    z = logits.astype(np.float64) - float(np.max(logits))
    p = np.exp(z) / math.fsum(np.exp(z))
    raw = np.array([sum(float(p[i]) for i in set(ids)) for ids in spellings])
    mass = float(raw.sum())
    return (raw / mass if mass > 0 else np.full(len(raw), 1.0 / len(raw))), mass


def _spellings(bench: Any, n: int) -> list[list[int]]:
    out = []
    for letter in LETTERS[:n]:
        ids = [t[0] for t in (bench.engine.tokenize(s, special=False) for s in (letter, " " + letter)) if len(t) == 1]
        if not ids:
            raise CommandError(f"the letter {letter!r} is not one token of this model")
        out.append(ids)
    return out


def choice_turn(bench: Any, conversation: Conversation, *, mode_label: str) -> dict[str, Any]:
    """What the database stores of a multiple-choice cell: the prompt's tokens with statistics
    and a ``choice`` record (answer, chosen, confidence, correct, probabilities, letter mass)."""
    last = conversation.last
    if last is None or ANSWER_KEY not in last.extra or not hasattr(bench, "evaluator"):
        raise CommandError("a choice cell needs an item and a local model (the option probabilities "
                           "come from the logits)")
    n = int(last.extra["choice_options"])
    plan = bench.plan(conversation, PREFILL, OPENING)
    records = bench.prompt_records(plan)
    stats, row = bench.evaluator.evaluate([r.id for r in records])
    probs, mass = letter_probs(row, _spellings(bench, n))
    chosen = LETTERS[int(np.argmax(probs))]
    tokens = [replace(r, stats=s) for r, s in zip(records, stats, strict=True)]
    return {"mode": mode_label, "writer": None, "prompt": plan.prompt, "text": chosen, "stop_reason": CHOICE,
            "prompt_tokens": tokens_json(tokens, bench.piece_text), "tokens": [],
            "choice": {"answer": last.extra[ANSWER_KEY], "chosen": chosen, "confidence": float(probs.max()),
                       "correct": chosen == last.extra[ANSWER_KEY], "letter_mass": mass,
                       "probs": {LETTERS[i]: round(float(p), 6) for i, p in enumerate(probs)}}}


def choice_summary(rows: Sequence[tuple[str, float, bool, float]]) -> list[dict[str, Any]]:
    """(condition, confidence, correct, letter mass) per answered item -> per condition: items,
    accuracy, mean confidence, mean letter mass, ECE and reliability bins."""
    by: dict[str, list[tuple[float, bool, float]]] = {}
    for condition, conf, correct, mass in rows:
        by.setdefault(condition, []).append((conf, correct, mass))
    out = []
    for condition, items in by.items():
        cal = calibration([c for c, _, _ in items], [k for _, k, _ in items], units=range(len(items)),
                          unit="items").to_dict()
        out.append({"condition": condition, "items": len(items),
                    "accuracy": sum(k for _, k, _ in items) / len(items),
                    "mean_confidence": sum(c for c, _, _ in items) / len(items),
                    "mean_letter_mass": sum(m for _, _, m in items) / len(items),
                    "calibration": cal})
    return out
