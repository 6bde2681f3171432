"""Opening a workbench from what a person names: a model (or a server URL), a template and the
template variables. Library code: keyword arguments in, a workbench out. This is the one place
workbenches are built and template names are turned into templates; the CLI, the REPL, the
experiment runners, the template lab and the Python API all come here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.backends.base import EngineOptions, MultiSequenceBackend
from harness.backends.remote import RemoteEngine
from harness.errors import CommandError
from harness.generation.remote_workbench import RemoteWorkbench
from harness.generation.workbench import BaseWorkbench, Workbench
from harness.paths import user_templates_dir
from harness.prompt.templates import GGUF, ChatTemplate, load_template

DEFAULT_N_CTX = 4096


def choose_template(spec: str | None, embedded: str | None = None, model_name: str = "model") -> ChatTemplate:
    """`spec` (a library name, a user template, a .jinja path; gguf or None: the model's embedded
    `embedded`), or an error that names --template."""
    return load_template(spec or GGUF, embedded=embedded, model_name=model_name, user_dir=user_templates_dir())


def template_for(spec: str | None, bench: BaseWorkbench) -> ChatTemplate:
    """`spec` on this workbench's model (gguf: its embedded template, a server's own)."""
    return choose_template(spec, bench.info.chat_template, bench.model_label)


def local_workbench(backend: MultiSequenceBackend, template: str | None = None,
                    variables: Mapping[str, Any] | None = None, *, literal_content: bool = False) -> Workbench:
    """A workbench on a model loaded in this process, with template `template`."""
    chosen = choose_template(template, backend.info.chat_template, backend.info.name)
    return Workbench(backend, chosen, variables, literal_content=literal_content)


def server_workbench(engine: RemoteEngine, template: str | None = None,
                     variables: Mapping[str, Any] | None = None) -> RemoteWorkbench:
    """A workbench on a server (template default: the server's own, which only llama-server exposes)."""
    chosen = choose_template(template, engine.info.chat_template, f"the server at {engine.url}")
    return RemoteWorkbench(engine, chosen, variables)


def open_server_workbench(url: str, template: str | None = None,
                          variables: Mapping[str, Any] | None = None) -> RemoteWorkbench:
    """One server with a template."""
    from harness.backends.servers import open_engine, split_backends

    if len(split_backends(url)) > 1:
        raise CommandError("--backend: give one URL here (a list spreads cells only for `run`)")
    engine = open_engine(url)
    try:
        return server_workbench(engine, template, variables)
    except BaseException:
        engine.close()
        raise


def open_workbench(*, model: str | None = None, backend: str | None = None, template: str | None = None,
                   variables: Mapping[str, Any] | None = None, n_ctx: int | None = None,
                   threads: int | None = None, literal_content: bool = False,
                   engine: EngineOptions | None = None) -> BaseWorkbench:
    """A workbench on `model` (a name or GGUF path, loaded here) or on the server at `backend`,
    with `template` (default: the model's embedded one)."""
    if backend:
        if model or literal_content:
            raise CommandError("--backend generates on a server: it takes neither --model nor "
                               "--literal-content (the server tokenizes the whole prompt)")
        return open_server_workbench(backend, template, variables)
    from harness.models.registry import DEFAULT_MODEL, open_backend

    loaded = open_backend(model or DEFAULT_MODEL, n_ctx=n_ctx or DEFAULT_N_CTX, n_threads=threads, engine=engine)
    try:
        return local_workbench(loaded, template, variables, literal_content=literal_content)
    except BaseException:
        loaded.close()
        raise


def workbench_options(explicit: Mapping[str, Any], profile: Any,
                      saved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`open_workbench`: what the user said (`explicit`, None where
    not said) over what a resumed session had (`saved`) over the profile."""
    saved = saved or {}
    backend = explicit.get("backend") or (None if explicit.get("model") else saved.get("backend"))

    def pick(key: str, default: Any) -> Any:
        for source in (explicit, saved):
            if source.get(key) is not None:
                return source[key]
        return default

    variables = {**profile.vars, **(saved.get("variables") or {}), **(explicit.get("variables") or {})}
    return {"model": pick("model", None if backend else profile.model), "backend": backend,
            "template": pick("template", profile.template), "variables": variables,
            "n_ctx": pick("n_ctx", profile.n_ctx), "threads": explicit.get("threads"),
            "literal_content": bool(pick("literal_content", profile.literal_content and not backend)),
            "engine": None if backend else profile.engine.merged(explicit.get("engine") or EngineOptions())}
