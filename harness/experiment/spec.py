"""Experiments: a YAML matrix expanded into ordered cells.

An experiment crosses models (each with its own templates) × modes × EOS policies × named
sampling sets × seeds × conversations. The file is read with ``yaml.safe_load`` semantics and
checked against a strict schema: an unknown key, a wrong type or a bad value fails with
``file:line: field 'path': ...`` and nothing runs. Cells are ordered by model, template and
conversation so that one model is loaded once and prompts sharing a prefix follow each other.

Mode ``past-eos`` is ``reply`` under EOS policy ``continue``: the model ends its turn and goes on
writing, and what it writes past its end of turn (the next user turn) is attributed by the turn
parser. Its EOS policy is fixed, so it makes one cell per sampling set × seed × conversation
whatever the ``eos`` list says.

Mode ``score`` (and ``{score: swap_roles}``) makes fixed-text cells: the conversation is scored
teacher-forced, nothing is sampled, so it makes one cell per conversation (the first sampling set
and seed name it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.backends.base import EngineOptions
from harness.errors import ExperimentError, HarnessError
from harness.experiment.conversations import ConversationSpec, parse_conversations, parse_items
from harness.experiment.schema import Schema
from harness.generation.settings import (
    EOS_CONTINUE,
    EOS_POLICIES,
    EOS_STOP,
    SETTINGS,
    SamplingParams,
)
from harness.prompt.conversation import Conversation
from harness.prompt.mode_names import CONTINUE, IMPERSONATE, PREFILL, REPLY
from harness.yamlio import error_location, field_lines, load_yaml

PAST_EOS = "past-eos"
SCORE = "score"  # a fixed-text cell: the conversation teacher-forced (harness.experiment.fixed_text)
SCORE_OPTIONS = ("swap_roles",)
CHOICE = "choice"  # a multiple-choice item read from the option letters (harness.experiment.choice)
MODE_KINDS = (REPLY, IMPERSONATE, PAST_EOS, PREFILL, CONTINUE, SCORE)
_READ_ONLY = (SCORE, CHOICE)  # nothing sampled: one cell per conversation
_TEXT_MODES = (PREFILL, IMPERSONATE)  # modes that may carry a text: {prefill: "Sure,"}

_TOP: dict[str, tuple[type, ...]] = {
    "name": (str,), "description": (str,), "models": (list,), "templates": (list,),
    "modes": (list,), "eos": (list,), "sampling": (dict,), "seeds": (list,), "max_tokens": (int,),
    "n_ctx": (int,), "threads": (int, type(None)), "conversations": (list,), "literal_content": (bool,),
    "sweep": (dict,), "items": (list,), "batch": (int,), "engine": (dict,),
}
DEFAULT_BATCH = 16  # cells sharing a prompt decoded together: bench/batch.py, 9 seeds on 2 cores:
# one batch of 9 ran at 0.86 of llama.cpp's own B=8 decode, batches of 8 + 1 at 0.75; llama.cpp itself
# was fastest at B=16 of B in {1, 4, 8, 9, 16}
_MODEL: dict[str, tuple[type, ...]] = {"name": (str,), "label": (str,), "templates": (list,), "n_ctx": (int,),
                                       "engine": (dict,)}
# a sampling set takes every setting but seed (an axis of its own) and eos (likewise)
_SAMPLING: dict[str, tuple[type, ...]] = {s.name: s.types for s in SETTINGS if s.name not in ("seed", "eos")}


@dataclass(frozen=True)
class ModelSpec:
    label: str  # short name in labels and the database
    source: str  # what open_backend is given: a known model name or a GGUF path
    templates: tuple[str, ...]
    n_ctx: int
    engine: EngineOptions = EngineOptions()  # llama.cpp load options (engine: at the top or per model)


@dataclass(frozen=True)
class ModeSpec:
    kind: str
    text: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.text}" if self.text else self.kind

    @property
    def plan_mode(self) -> str:
        return REPLY if self.kind == PAST_EOS else self.kind

    @property
    def forced_eos(self) -> str | None:
        if self.kind in _READ_ONLY:
            return EOS_STOP  # nothing is generated: one cell, whatever `eos` lists
        return EOS_CONTINUE if self.kind == PAST_EOS else None

    @property
    def samples(self) -> bool:
        """False for fixed-text and choice cells: one cell per conversation, not per sampling
        set and seed."""
        return self.kind not in _READ_ONLY


@dataclass(frozen=True)
class Experiment:
    name: str
    path: str
    description: str
    models: tuple[ModelSpec, ...]
    modes: tuple[ModeSpec, ...]
    eos: tuple[str, ...]
    sampling: tuple[tuple[str, SamplingParams], ...]
    seeds: tuple[int, ...]
    conversations: tuple[ConversationSpec, ...]
    threads: int | None = None
    literal_content: bool = False
    batch: int = DEFAULT_BATCH  # how many cells sharing a prompt decode together

    def canonical(self, decode: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Everything that decides the results: the matrix, the batch size, and `decode` (model
        label -> its engine's decode path settings and llama.cpp build), whatever can change a
        number. Not the name, description or thread count (the decode path gives the same values
        on any number of threads: harness.backends.invariance)."""
        return {
            "models": [[m.label, m.source, list(m.templates), m.n_ctx,
                        *([m.engine.to_dict()] if m.engine.to_dict() else [])] for m in self.models],
            "modes": [m.label for m in self.modes], "eos": list(self.eos),
            "sampling": {name: p.to_dict() for name, p in self.sampling},
            "seeds": list(self.seeds), "literal_content": self.literal_content,
            "conversations": [[c.name, c.conversation.to_dicts(), c.modes] for c in self.conversations],
            "batch": self.batch, "decode": dict(decode or {}),
        }

    def digest(self, decode: Mapping[str, Any] | None = None) -> str:
        text = json.dumps(self.canonical(decode), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One generation of the matrix."""

    model: str
    source: str
    template: str
    mode: ModeSpec
    eos: str
    sampling: str
    params: SamplingParams  # seed and EOS policy included
    seed: int
    conversation: str

    @property
    def key(self) -> str:
        return "|".join([self.model, self.template, self.mode.label, self.eos, self.sampling,
                         str(self.seed), self.conversation])

    @property
    def conversation_key(self) -> tuple[str, str]:
        """(conversation name, mode label): a name may repeat across disjoint modes (one set of
        conversations cut at the last user turn for reply, whole for impersonate)."""
        return self.conversation, self.mode.label

    def condition(self) -> dict[str, Any]:
        return {"model": self.model, "template": self.template, "mode": self.mode.label, "eos": self.eos,
                "sampling": self.sampling, "seed": self.seed, "conversation": self.conversation}


def conversation_table(exp: Experiment) -> dict[tuple[str, str], Conversation]:
    """Cell.conversation_key -> the conversation that cell runs."""
    return {(c.name, m.label): c.conversation for c in exp.conversations for m in exp.modes
            if c.modes is None or m.label in c.modes}


def condition_label(condition: dict[str, Any], *, with_seed: bool = True) -> str:
    """`smollm2 · gguf · impersonate · eos=stop · t0.8 · seed 1` (seed left out for pooled rows)."""
    parts = [condition["model"], condition["template"], condition["mode"], f"eos={condition['eos']}",
             condition["sampling"]]
    if with_seed and condition.get("seed") is not None:
        parts.append(f"seed {condition['seed']}")
    return " · ".join(str(p) for p in parts)


def expand(exp: Experiment) -> list[Cell]:
    """Every cell, ordered model → template → conversation → mode → EOS → sampling → seed."""
    out: list[Cell] = []
    for model in exp.models:
        for template in model.templates:
            for conv in exp.conversations:
                for mode in exp.modes:
                    if conv.modes is not None and mode.label not in conv.modes:
                        continue
                    if (mode.kind == CHOICE) != conv.item:
                        continue
                    policies = (mode.forced_eos,) if mode.forced_eos else exp.eos
                    sets = exp.sampling if mode.samples else exp.sampling[:1]
                    for eos in policies:
                        for name, params in sets:
                            for seed in (exp.seeds if mode.samples else exp.seeds[:1]):
                                out.append(Cell(model.label, model.source, template, mode, eos, name,
                                                params.updated(seed=seed, eos=eos), seed, conv.name))
    return out


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"cannot read the experiment: {exc.__class__.__name__}", where=str(path)) from None
    return parse_experiment(text, where=str(path), base=path.parent, default_name=path.stem)


def parse_experiment(text: str, *, where: str, base: Path, default_name: str = "experiment") -> Experiment:
    try:
        data, node = load_yaml(text)
    except yaml.YAMLError as exc:
        at, problem = error_location(exc, where)
        raise ExperimentError(f"not valid YAML: {problem}", where=at, hint="fix the file's syntax") from None
    schema = Schema(where, field_lines(node) if node is not None else {})
    if not isinstance(data, dict):
        raise ExperimentError("an experiment must be a mapping of fields", where=f"{where}:1")
    schema.fields(data, "", _TOP)
    modes = _modes(schema, data.get("modes", [REPLY]))
    if data.get("items"):
        modes += (ModeSpec(CHOICE),)
    for required in ("models", "conversations"):
        if required not in data and not (required == "conversations" and "items" in data):
            raise ExperimentError(f"missing field '{required}'", where=where, hint="see docs/experiments.md")
    max_tokens = data.get("max_tokens", 96)
    n_ctx = data.get("n_ctx", 2048)
    batch = data.get("batch", DEFAULT_BATCH)
    for key, value, low in (("max_tokens", max_tokens, 1), ("n_ctx", n_ctx, 64), ("batch", batch, 1)):
        if value < low:
            raise schema.fail(key, f"must be at least {low}")
    templates = schema.items(data, "templates", (str,), ["gguf"])
    eos = schema.items(data, "eos", (str,), [EOS_STOP])
    for i, policy in enumerate(eos):
        if policy not in EOS_POLICIES:
            raise schema.fail(f"eos[{i}]", f"must be one of {', '.join(EOS_POLICIES)}")
    seeds = schema.items(data, "seeds", (int,), [0])
    return Experiment(
        name=data.get("name", default_name), path=where, description=data.get("description", ""),
        models=_models(schema, data["models"], tuple(templates), n_ctx, _engine(schema, data, "engine")),
        modes=modes, eos=tuple(eos),
        sampling=_sweep(schema, data.get("sweep", {}),
                        _sampling(schema, data.get("sampling", {"default": {}}), max_tokens)),
        seeds=tuple(seeds),
        conversations=(parse_conversations(schema, data["conversations"], base, tuple(m.label for m in modes))
                       if "conversations" in data else ()) + parse_items(schema, data.get("items", []), base),
        threads=data.get("threads"), literal_content=data.get("literal_content", False), batch=batch)


def _engine(schema: Schema, data: dict[str, Any], path: str, base: EngineOptions | None = None) -> EngineOptions:
    """`engine:` options (llama.cpp load settings) over `base`."""
    key = path.rsplit(".", 1)[-1]
    try:
        own = EngineOptions.from_mapping(data.get(key) or {})
    except ValueError as exc:
        field_name, _, message = str(exc).partition(": ")
        raise schema.fail(f"{path}.{field_name}", message) from None
    return (base or EngineOptions()).merged(own)


def _models(schema: Schema, items: list[Any], templates: tuple[str, ...], n_ctx: int,
            engine: EngineOptions) -> tuple[ModelSpec, ...]:
    if not items:
        raise schema.fail("models", "must not be empty")
    out = []
    for i, item in enumerate(items):
        path = f"models[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        entry = schema.fields(item, path, _MODEL)
        if "name" not in entry:
            raise schema.fail(path, "a model needs 'name' (a known model or a GGUF path)")
        own = tuple(entry.get("templates", templates))
        if not own or not all(isinstance(t, str) for t in own):
            raise schema.fail(f"{path}.templates", "expected a non-empty list of template names")
        label = entry.get("label") or Path(entry["name"]).stem
        out.append(ModelSpec(label, entry["name"], own, entry.get("n_ctx", n_ctx),
                             _engine(schema, entry, f"{path}.engine", engine)))
    labels = [m.label for m in out]
    if len(set(labels)) != len(labels):
        raise schema.fail("models", "two models share a label (set 'label' to tell them apart)")
    return tuple(out)


def _modes(schema: Schema, items: list[Any]) -> tuple[ModeSpec, ...]:
    if not items:
        raise schema.fail("modes", "must not be empty")
    out = []
    for i, item in enumerate(items):
        path = f"modes[{i}]"
        if isinstance(item, dict) and len(item) == 1:
            kind, text = next(iter(item.items()))
            if kind == SCORE and text in SCORE_OPTIONS:
                out.append(ModeSpec(kind, text))
                continue
            if kind not in _TEXT_MODES or not isinstance(text, str):
                raise schema.fail(path, f"a mode with text is {{prefill: TEXT}} or {{impersonate: TEXT}}, got {item!r}")
            out.append(ModeSpec(kind, text))
        elif isinstance(item, str) and item in MODE_KINDS:
            out.append(ModeSpec(item))
        else:
            raise schema.fail(path, f"expected one of {', '.join(MODE_KINDS)} or {{prefill: TEXT}}, got {item!r}")
    if len({m.label for m in out}) != len(out):
        raise schema.fail("modes", "lists the same mode twice")
    return tuple(out)


def _sampling(schema: Schema, sets: dict[str, Any], max_tokens: int) -> tuple[tuple[str, SamplingParams], ...]:
    if not sets:
        raise schema.fail("sampling", "must name at least one sampling set")
    out = []
    for name, values in sets.items():
        path = f"sampling.{name}"
        values = dict(schema.fields(values or {}, path, _SAMPLING))
        try:
            params = SamplingParams().with_values({"max_tokens": max_tokens, **values})
        except HarnessError as exc:
            raise schema.fail(f"{path}.{exc.field}", exc.message) from None
        out.append((str(name), params))
    return tuple(out)


def _sweep(schema: Schema, sweep: dict[str, Any],
           sets: tuple[tuple[str, SamplingParams], ...]) -> tuple[tuple[str, SamplingParams], ...]:
    """`sweep: {temperature: [0.3, 1.0]}` crosses every sampling set with every value: set `t`
    becomes `t T=0.3`, `t T=1.0` (the one default set becomes `T=0.3`, ...). Several settings
    cross with each other, in the order given."""
    out = list(sets)
    for key, values in sweep.items():
        path = f"sweep.{key}"
        if key not in _SAMPLING:
            raise schema.fail(path, f"not a sampling setting (known: {', '.join(_SAMPLING)})")
        if not isinstance(values, list) or not values:
            raise schema.fail(path, "expected a non-empty list of values")
        short = {"temperature": "T"}.get(key, key)
        crossed = []
        for name, params in out:
            for i, value in enumerate(values):
                try:
                    swept = params.with_values({key: value})
                except HarnessError as exc:
                    raise schema.fail(f"{path}[{i}]", exc.message) from None
                label = f"{short}={value}" if (name == "default" and len(sets) == 1) else f"{name} {short}={value}"
                crossed.append((label, swept))
        out = crossed
    if len({name for name, _ in out}) != len(out):
        raise schema.fail("sweep", "lists the same value twice")
    return tuple(out)
