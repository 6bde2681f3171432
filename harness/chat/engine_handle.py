"""The session's model: the workbench, the names it was opened from and how to open another.

The one owner of the workbench a session talks to. Switching the model, the template, a template
variable or literal content goes through here; the workbench derives its turn markers and blocks
again from the new template and variables, and a switch that fails changes nothing (a new model
is loaded before the old one is closed; a template is checked by lint before it is used).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from harness.errors import CommandError, ModelError, TemplateError
from harness.generation.workbench import BaseWorkbench
from harness.lab.findings import Finding
from harness.prompt.templates import GGUF

WorkbenchLoader = Callable[..., BaseWorkbench]  # (model, template, **n_ctx/threads) -> a workbench
RELOAD_KEYS = ("n_ctx", "threads")


class EngineHandle:
    def __init__(self, bench: BaseWorkbench, *, model_spec: str | None = None, template_spec: str | None = None,
                 loader: WorkbenchLoader | None = None, options: Mapping[str, Any] | None = None):
        self._bench = bench
        self._model_spec, self._template_spec = model_spec, template_spec
        self._loader = loader
        self._options = dict(options or {})  # n_ctx, threads: what a reload keeps

    # -- reading -------------------------------------------------------------------------------
    @property
    def bench(self) -> BaseWorkbench:
        return self._bench

    @property
    def model_spec(self) -> str | None:
        return self._model_spec

    @property
    def template_spec(self) -> str | None:
        return self._template_spec

    @property
    def is_remote(self) -> bool:
        return self._bench.is_remote

    @property
    def can_reload(self) -> bool:
        return self._loader is not None

    @property
    def threads(self) -> int | None:
        return self._options.get("threads")

    # -- switching -----------------------------------------------------------------------------
    def switch_template(self, spec: str) -> list[Finding]:
        """Use template `spec`, after lint: refuse one that fails to render (L001) or whose roles
        cannot be told (L012). Returns the findings worth a warning (L003: its end of turn never
        stops the model)."""
        from harness.generation.open import template_for
        from harness.lab.lint import lint
        from harness.prompt.markers import derive_markers

        bench = self._bench
        template = template_for(spec, bench)
        try:
            derive_markers(template, bench.variables)
            located = None
        except TemplateError as exc:  # says where; lint says which check
            located = exc
        findings, _ = lint(template, bench.variables, None if bench.is_remote else bench.engine)
        fatal = [f for f in findings if f.code in ("L001", "L012")]
        if fatal:
            from harness.chat.slash import quote

            raise CommandError(f"template {template.name} refused: {fatal[0].code} {fatal[0].message}",
                               where=located.where if located else None,
                               hint=f"harness lint {quote(spec)} shows every finding")
        if located is not None:
            raise located
        bench.set_template(template)
        self._template_spec = spec
        return [f for f in findings if f.code == "L003"]

    def switch_model(self, name: str, template: str | None) -> None:
        """Load model `name` with `template` (None: the current template's name), then close the
        old one; the template is checked against the model's file before anything loads."""
        if self._loader is None:
            raise CommandError("this session cannot load another model")
        template = template if template is not None else self._template_spec
        check_template_first(name, template)
        bench = self._loader(name, template, **self._options)
        self._replace(bench)
        self._model_spec, self._template_spec = name, template

    def reload(self, **changes: Any) -> None:
        """Reopen the model with `changes` (n_ctx, threads); the old one stays if that fails.
        Variables and literal content carry over."""
        if self._loader is None:
            raise CommandError("this session cannot reload its model")
        unknown = set(changes) - set(RELOAD_KEYS)
        if unknown:
            raise CommandError(f"cannot reload with {', '.join(sorted(unknown))}")
        bench = self._loader(self._model_spec, self._template_spec, **{**self._options, **changes})
        try:
            bench.set_variables(self._bench.overrides)
            bench.set_literal_content(self._bench.literal_content)
        except BaseException:
            bench.close()
            raise
        self._replace(bench)
        self._options.update(changes)

    def _replace(self, bench: BaseWorkbench) -> None:
        old, self._bench = self._bench, bench
        old.close()

    def set_var(self, name: str, word: str) -> Any:
        """Set template variable `name` from a typed word (JSON, or else text); its value."""
        try:
            value = json.loads(word)
        except ValueError:
            value = word
        self._bench.set_variables({**self._bench.overrides, name: value})
        return value

    def set_vars(self, values: Mapping[str, Any]) -> None:
        """Set several template variables at once (a profile's vars)."""
        self._bench.set_variables({**self._bench.overrides, **values})

    def set_literal_content(self, on: bool) -> None:
        self._bench.set_literal_content(on)

    def saved_state(self) -> dict[str, Any]:
        """What reopening this workbench needs besides model and template."""
        return {"backend": self._bench.backend_url, "variables": self._bench.overrides,
                "literal_content": self._bench.literal_content}

    def close(self) -> None:
        self._bench.close()


def check_template_first(model: str, template: str | None) -> None:
    """Refuse, before loading anything, a model whose file has no chat template when the
    template asked for is its embedded one."""
    if template not in (None, GGUF):
        return
    from harness.models.gguf import read_gguf_info
    from harness.models.registry import resolve_model

    try:
        _, path = resolve_model(model)
        embedded = read_gguf_info(path).chat_template
    except ModelError:
        return  # the loader says what is wrong with the file
    if embedded is None:
        raise CommandError(f"{model} has no embedded chat template (the current template is gguf)",
                           hint=f"/model {model} raw  (or chatml, or a .jinja path)")
