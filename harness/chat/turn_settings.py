"""The settings every turn of a session is asked with: a frozen value, replaced whole.

Sampling settings (harness.generation.settings), what a prompt longer than the context does, and
the profile they came from. A value is checked when it is made, so a session never holds
settings a turn would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.generation.settings import OVERFLOW_ERROR, SamplingParams, check_overflow


@dataclass(frozen=True)
class TurnSettings:
    params: SamplingParams = field(default_factory=SamplingParams)
    context_overflow: str = OVERFLOW_ERROR
    profile: str | None = None  # the profile last applied (later changes keep its name)

    def __post_init__(self) -> None:
        self.params.validate()
        check_overflow(self.context_overflow)

    def with_params(self, **changes: Any) -> TurnSettings:
        return replace(self, params=self.params.updated(**changes))

    def updated(self, **changes: Any) -> TurnSettings:
        return replace(self, **changes)
