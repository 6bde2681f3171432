"""Lint over many things at once: template files and folders, library names, and GGUF models
(their embedded and named templates and their tokenizers), into one list of results.

Each result is one template (or one model's tokenizer) with its findings; suppressions are
applied here, so every output format and the exit code agree. Time is bounded per file: the
templates of one GGUF share one deadline (``time_limit`` seconds), so a model with a thousand
slow named templates costs ``time_limit``, not a thousand render timeouts (L015 says what was
left unchecked). Files are read only when they are regular and of a size a template can have.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import CommandError, HarnessError
from harness.lab.lint.findings import Finding
from harness.lab.lint.static import MAX_STATIC_CHARS, finding, static_findings
from harness.lab.lint.suppress import Suppressions
from harness.prompt.templates import GGUF, ChatTemplate

DEFAULT_TIME_LIMIT_S = 60.0
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass
class Linted:
    """One linted template (or model tokenizer): where it came from and what was found."""

    file: str  # the .jinja, or the .gguf it is embedded in ("" for a library template)
    template: str  # its name: the path, a library name, MODEL:gguf, MODEL:gguf:NAME, MODEL:tokenizer
    key: str | None = None  # the GGUF metadata key it was read from
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[tuple[Finding, str]] = field(default_factory=list)
    markers: dict[str, Any] | None = None
    capabilities: dict[str, str] | None = None
    note: str = ""


@dataclass(frozen=True)
class Options:
    """What every template is linted with."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    static_only: bool = False
    time_limit: float = DEFAULT_TIME_LIMIT_S
    with_capabilities: bool = True
    messages: Any = None  # a Conversation: L013 (needs a model)
    config: Mapping[str, str] | None = None  # --against-config: name -> template source (L203)
    config_file: str = "tokenizer_config.json"
    suppressions: Suppressions | None = None


def lint_all(templates: Sequence[str], models: Sequence[str], options: Options) -> list[Linted]:
    """Lint `templates` (paths, folders, library names, ``gguf``) against each of `models`."""
    if not models:
        if GGUF in templates:
            raise CommandError("lint gguf needs --model (the template embedded in it)")
        if options.messages is not None:
            raise CommandError("lint --messages needs --model (control tokens are the model's)")
        results = [r for spec in templates for r in _lint_spec(spec, None, options)]
    else:
        results = [r for model in models for r in _lint_model(model, templates or [GGUF], options)]
    return [_suppressed(r, options.suppressions) for r in results]


def _lint_model(model: str, specs: Sequence[str], options: Options) -> Iterator[Linted]:
    """The model's tokenizer, then each spec (``gguf``: its embedded and named templates). A GGUF
    llama.cpp cannot load still has its templates linted, from the header alone."""
    from harness.errors import ModelError
    from harness.lab.lint.model_rules import (
        confusable_tokens,
        declared_end_ids,
        end_of_turn_findings,
    )
    from harness.models.gguf import read_gguf_info
    from harness.models.registry import open_backend, resolve_model

    name, file = resolve_model(model)
    path = str(file)
    info = read_gguf_info(path)
    try:
        backend = open_backend(model, vocab_only=True)
    except ModelError as exc:
        backend = None
        yield Linted(path, f"{name}:tokenizer", "tokenizer.ggml", note=f"tokenizer not checked: {exc.message}")
    try:
        if backend is not None:
            yield Linted(path, f"{name}:tokenizer", "tokenizer.ggml",
                         confusable_tokens(backend) + end_of_turn_findings(backend, declared_end_ids(info.scalars)))
        special = (backend.info.bos_text, backend.info.eos_text) if backend else (info.bos_token, info.eos_token)
        options = replace(options, variables={"bos_token": special[0] or "", "eos_token": special[1] or "",
                                              **options.variables})
        for spec in specs:
            if spec == GGUF:
                yield from _lint_embedded(name, path, info, backend, options)
            else:
                yield from _lint_spec(spec, backend, options)
    finally:
        if backend is not None:
            backend.close()


def _lint_embedded(name: str, path: str, info: Any, backend: Any, options: Options) -> Iterator[Linted]:
    """The GGUF's chat template and its named ones, all under one deadline."""
    if not info.chat_template:
        yield Linted(path, f"{name}:gguf", CHAT_TEMPLATE_KEY, note="no embedded chat template")
    embedded = [(CHAT_TEMPLATE_KEY, "default", f"{name}:gguf", info.chat_template)] if info.chat_template else []
    embedded += [(f"{CHAT_TEMPLATE_KEY}.{n}", n, f"{name}:gguf:{n}", s) for n, s in info.named_templates.items()]
    deadline = time.monotonic() + options.time_limit
    for i, (key, config_name, label, source) in enumerate(embedded):
        if time.monotonic() > deadline:
            yield Linted(path, label, key, [finding("L015", f"not linted: lint's {options.time_limit:g} s for this "
                                                    f"file ran out ({len(embedded) - i} template(s) left)",
                                                    probe="time")])
            return
        yield _lint_template(ChatTemplate(label, source, GGUF), path, key, backend, options, deadline, config_name)


def _lint_spec(spec: str, backend: Any, options: Options) -> Iterator[Linted]:
    if spec == GGUF:
        raise CommandError("gguf is the model's embedded template: give it with --model")
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.jinja") if _regular(p))
        if not files:
            raise CommandError("no .jinja files in this folder", where=spec)
        for file in files:
            yield _lint_file(str(file), backend, options)
    elif spec.endswith(".jinja") or "/" in spec or path.exists():
        if not path.exists():
            raise CommandError("template file not found", where=spec, hint="give a .jinja path, a folder, "
                               "a library name, or gguf with --model")
        yield _lint_file(spec, backend, options)
    else:
        from harness.paths import user_templates_dir
        from harness.prompt.templates import load_template

        template = load_template(spec, user_dir=user_templates_dir())
        deadline = time.monotonic() + options.time_limit
        yield _lint_template(template, template.origin, None, backend, options, deadline, "default")


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _lint_file(file: str, backend: Any, options: Options) -> Linted:
    """A template file, read only if it is a regular file of a size a template can have."""
    try:
        with open(file, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                return Linted(file, file, findings=[finding("L001", "not a regular file", probe="file")])
            if info.st_size > 4 * MAX_STATIC_CHARS:  # UTF-8 is at most 4 bytes a character
                return Linted(file, file, findings=[finding("L112", f"{info.st_size:,} bytes: too large to be a "
                                                            "chat template", (1, 1))])
            source = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Linted(file, file, findings=[finding("L001", f"cannot read the template: {type(exc).__name__}",
                                                    probe="file")])
    deadline = time.monotonic() + options.time_limit
    return _lint_template(ChatTemplate(file, source, file), file, None, backend, options, deadline, "default")


def _lint_template(template: ChatTemplate, file: str, key: str | None, backend: Any, options: Options,
                   deadline: float, config_name: str) -> Linted:
    from harness.lab.lint.model_rules import differs_from_config
    from harness.lab.lint.runtime import GuardedTemplate, OutOfTime, capabilities, lint

    result = Linted(file, template.name, key)
    if options.static_only:
        result.findings = static_findings(template)
    else:
        guarded = GuardedTemplate.of(template, deadline)
        result.findings, markers = lint(guarded, options.variables, backend)
        result.markers = markers.to_dict() if markers else None
        if options.messages is not None:
            try:
                result.findings += content_findings(guarded, options.variables, backend, options.messages)
            except OutOfTime:
                if not any(f.code == "L015" for f in result.findings):
                    result.findings.append(finding("L015", "lint's time budget ran out before --messages "
                                                   "was checked", probe="time"))
        if options.with_capabilities:
            result.capabilities = capabilities(guarded, options.variables)
    if options.config is not None and config_name in options.config:
        result.findings += differs_from_config(template.source, options.config[config_name],
                                               options.config_file, config_name)
    return result


def content_findings(template: ChatTemplate, variables: Mapping[str, Any], backend: Any,
                     conversation: Any) -> list[Finding]:
    """L013: message content that the model's tokenizer turns into control tokens."""
    from harness.generation.evaluation import find_field_injections, find_injections, message_fields
    from harness.prompt.modes import plan_prompt

    try:
        plan = plan_prompt(conversation, template, "as-is", variables=variables)
    except HarnessError:
        return []  # the template cannot render these messages: the probes say why
    found = [*find_injections(backend, plan.prompt, plan.segments),
             *find_field_injections(backend, message_fields(conversation))]
    return [Finding("L013", "warning", i.describe(), "messages") for i in found]


def _suppressed(result: Linted, suppressions: Suppressions | None) -> Linted:
    if suppressions is None or not suppressions.entries:
        return result
    kept = []
    for f in result.findings:
        reason = suppressions.reason(result.file or result.template, f)
        if reason is None:
            kept.append(f)
        else:
            result.suppressed.append((f, reason))
    result.findings = kept
    return result

