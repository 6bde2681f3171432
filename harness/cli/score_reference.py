"""`score --reference R`: open the reference model, compare, and fold the result into the output."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.backends.base import Backend
from harness.generation.records import TokenRecord
from harness.prompt.segments import Segment


def score_against_reference(spec: str, threads: int | None, model: Backend, tokens: Sequence[TokenRecord], *,
                            text: str, segments: Sequence[Segment],
                            encode: Callable[[Backend], list[TokenRecord]],
                            default_role: str = "template") -> dict[str, Any]:
    """`--reference R`: the reference's comparison of the scored text (empty without one)."""
    from harness.generation.reference_model import reference_json, score_reference, token_fields
    from harness.models.registry import open_backend

    reference = open_backend(spec, n_ctx=model.info.n_ctx, n_threads=threads)
    try:
        score = score_reference(model, tokens, reference, text=text, segments=segments,
                                encode=encode, default_role=default_role)
    finally:
        reference.close()
    return {"reference": reference_json(score, tokens),
            "token_fields": token_fields(score.steps) if score.same_vocabulary else []}


def merge_reference(data: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Add the reference's per-token keys and its `reference` block to a `score --json` dict."""
    if not extra:
        return data
    for token, fields in zip(data["tokens"], extra["token_fields"], strict=False):
        token.update(fields)
    return data | {"reference": extra["reference"]}


def print_reference(extra: dict[str, Any]) -> None:
    if extra:
        from harness.generation.reference_model import reference_lines

        for line in reference_lines(extra["reference"]):
            print(line)
