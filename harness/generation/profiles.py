"""Profiles: YAML files binding model, template, sampling, EOS policy and system prompt.

Loaded with ``yaml.safe_load`` semantics, then checked against a strict schema: an unknown key,
a wrong type or a bad value fails with the file, the line and the field named, and nothing of
the profile is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.backends.base import EngineOptions
from harness.errors import HarnessError, ProfileError
from harness.generation.settings import (
    OVERFLOW_ERROR,
    OVERFLOW_POLICIES,
    SETTINGS,
    SamplingParams,
    describe_types,
)
from harness.paths import data_dir, library_dir
from harness.yamlio import error_location, load_yaml

PROFILES_DIR = library_dir("profiles")

# a profile names eos and logit_bias at its top level; the other settings under sampling:
SAMPLING_KEYS = tuple(s.name for s in SETTINGS if s.name not in ("eos", "logit_bias"))
_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "description": (str,), "model": (str,), "template": (str,), "system": (str, type(None)),
    "n_ctx": (int,), "eos": (str,), "sampling": (dict,), "logit_bias": (dict,), "vars": (dict,),
    "literal_content": (bool,), "context_overflow": (str,), "engine": (dict,),
}


@dataclass(frozen=True)
class Profile:
    name: str
    model: str | None = None
    template: str | None = None
    system: str | None = None
    n_ctx: int = 4096
    sampling: SamplingParams = field(default_factory=SamplingParams)
    vars: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    literal_content: bool = False
    context_overflow: str = OVERFLOW_ERROR
    engine: EngineOptions = field(default_factory=EngineOptions)  # llama.cpp load options


def _lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Field path -> 1-based line of its key, for every key in nested mappings."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            out[path] = key.start_mark.line + 1
            out.update(_lines(value, path + "."))
    return out


def _kind(types: tuple[type, ...]) -> str:
    return describe_types(types)


def _check(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def parse_profile(text: str, *, name: str, where: str) -> Profile:
    try:
        data, node = load_yaml(text)
    except yaml.YAMLError as exc:
        at, problem = error_location(exc, where)
        raise ProfileError(f"not valid YAML: {problem}", where=at, hint="fix the file's syntax") from None
    data = data or {}
    lines = _lines(node) if node is not None else {}
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a mapping of fields", where=f"{where}:1")

    def fail(path: str, message: str) -> ProfileError:
        line = lines.get(path)
        return ProfileError(f"field '{path}': {message}", where=f"{where}:{line}" if line else where,
                            hint="fix or remove the field")

    for key, value in data.items():
        if key not in _TOP_FIELDS:
            raise fail(str(key), f"unknown field (known: {', '.join(_TOP_FIELDS)})")
        if not _check(value, _TOP_FIELDS[key]):
            raise fail(key, f"expected {_kind(_TOP_FIELDS[key])}, got {value!r}")
    sampling = dict(data.get("sampling") or {})
    for key in sampling:
        if key not in SAMPLING_KEYS:
            raise fail(f"sampling.{key}", f"unknown field (known: {', '.join(SAMPLING_KEYS)})")
    values = {**sampling, "eos": data.get("eos", "stop"), "logit_bias": data.get("logit_bias") or {}}
    try:
        params = SamplingParams().with_values(values)
    except HarnessError as exc:
        top = exc.field == "eos" or str(exc.field).startswith("logit_bias")
        path = exc.field if top else f"sampling.{exc.field}"
        raise fail(path, exc.message) from None
    n_ctx = data.get("n_ctx", 4096)
    if n_ctx < 64:
        raise fail("n_ctx", "must be at least 64")
    try:
        engine = EngineOptions.from_mapping(data.get("engine") or {})
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        raise fail(f"engine.{key}", message) from None
    overflow = data.get("context_overflow", OVERFLOW_ERROR)
    if overflow not in OVERFLOW_POLICIES:
        raise fail("context_overflow", f"must be one of {', '.join(OVERFLOW_POLICIES)}")
    return Profile(name=name, model=data.get("model"), template=data.get("template"),
                   system=data.get("system"), n_ctx=n_ctx, sampling=params,
                   vars=dict(data.get("vars") or {}), description=data.get("description", ""),
                   literal_content=data.get("literal_content", False), context_overflow=overflow,
                   engine=engine)


def find_profile(spec: str) -> Path:
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    for folder in (data_dir() / "profiles", PROFILES_DIR):
        for suffix in (".yaml", ".yml"):
            candidate = folder / f"{spec}{suffix}"
            if candidate.is_file():
                return candidate
    known = ", ".join(list_profiles()) or "none"
    raise ProfileError(f"no profile '{spec}'", hint=f"known: {known}; or give a .yaml path")


def list_profiles() -> list[str]:
    names = {p.stem for folder in (PROFILES_DIR, data_dir() / "profiles") if folder.is_dir()
             for p in folder.glob("*.y*ml")}
    return sorted(names)


def load_profile(spec: str) -> Profile:
    path = find_profile(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read profile: {exc}", where=str(path)) from None
    return parse_profile(text, name=path.stem, where=str(path))


def default_profile() -> Profile:
    return Profile(name="default")
