"""Shared fixtures: an isolated HARNESS_HOME per test, real models loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Gemma-3 is assembled (235 MB, sha256 checked) once into a cache that outlives test runs.
os.environ.setdefault("HARNESS_CACHE", str(REPO / ".cache"))


@pytest.fixture(autouse=True)
def harness_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "harness-home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def smollm2_backend():
    from harness.models.registry import open_backend

    backend = open_backend("smollm2", n_ctx=2048, n_threads=2)
    yield backend
    backend.close()


@pytest.fixture
def smollm2(smollm2_backend):
    """A workbench on the real SmolLM2 with its embedded template, KV cache reset."""
    from harness.generation.workbench import Workbench
    from harness.prompt.templates import load_template

    template = load_template("gguf", embedded=smollm2_backend.info.chat_template, model_name="smollm2")
    bench = Workbench(smollm2_backend, template)
    bench.evaluator.forget()
    return bench


@pytest.fixture(scope="session")
def gemma_backend():
    from harness.models.registry import open_backend

    backend = open_backend("gemma3-270m", n_ctx=2048, n_threads=2)
    yield backend
    backend.close()


def pytest_collection_modifyitems(items) -> None:
    """A test that needs Gemma needs a model: `-m "not model"` leaves both out."""
    for item in items:
        if item.get_closest_marker("gemma") is not None and item.get_closest_marker("model") is None:
            item.add_marker(pytest.mark.model)
