"""The 70 real chat templates of llama.cpp's models/templates, as the pinned llama-cpp-python sdist
ships them. ``./dev setup`` (and ``./dev test``) fetch the sdist with pip once and keep only the
.jinja files in .cache/llama-templates; HARNESS_REAL_TEMPLATES may point at another copy."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COUNT = 70


def real_templates_dir() -> Path:
    folder = Path(os.environ.get("HARNESS_REAL_TEMPLATES") or REPO / ".cache" / "llama-templates")
    found = sorted(folder.glob("*.jinja")) if folder.is_dir() else []
    assert len(found) == COUNT, (f"{folder} holds {len(found)} of llama.cpp's {COUNT} real templates: "
                                 "run ./dev setup (it fetches llama-cpp-python's sdist with pip)")
    return folder
