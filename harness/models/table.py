"""Rows for `harness models` and `harness templates`: facts read off files, not remembered."""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.models.gguf import read_gguf_info
from harness.models.registry import KNOWN_MODELS, resolve_model
from harness.paths import user_templates_dir
from harness.prompt.markers import derive_markers
from harness.prompt.templates import ChatTemplate, list_library, load_template


def eog_tokens(name: str) -> list[str]:
    """End-of-generation token texts as llama.cpp decides them (a vocabulary-only load)."""
    from harness.models.registry import open_backend

    backend = open_backend(name, vocab_only=True)
    try:
        return [backend.piece(i).decode("utf-8", "replace") for i in sorted(backend.info.eog_ids)]
    finally:
        backend.close()


def describe_known_models() -> list[dict[str, Any]]:
    rows = []
    for name, known in KNOWN_MODELS.items():
        try:
            _, path = resolve_model(name)
            info = read_gguf_info(path)
            rows.append({
                "name": name, "description": known.description, "path": str(path),
                "architecture": info.architecture, "size_mb": round(info.file_size / 2**20, 1),
                "n_vocab": info.n_vocab, "context_length": info.context_length,
                "bos": info.bos_token, "eos": info.eos_token, "eot": info.eot_token,
                "eog": eog_tokens(name), "add_bos": info.add_bos,
                "chat_template": info.chat_template is not None,
            })
        except HarnessError as exc:
            rows.append({"name": name, "description": known.description, "error": str(exc)})
    return rows


def _row(template: ChatTemplate, variables: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": template.name, "origin": template.origin}
    try:
        row["markers"] = derive_markers(template, variables).to_dict()
    except HarnessError as exc:
        row["error"] = str(exc)
    return row


def describe_templates(model: str | None) -> list[dict[str, Any]]:
    variables: dict[str, Any] = {"bos_token": "", "eos_token": ""}
    rows = []
    embedded = None
    model_name = "model"
    if model:
        model_name, path = resolve_model(model)
        info = read_gguf_info(path)
        variables = {"bos_token": info.bos_token or "", "eos_token": info.eos_token or ""}
        embedded = info.chat_template
    for name in list_library():
        rows.append(_row(load_template(name), variables))
    user_dir = user_templates_dir()
    if user_dir.is_dir():
        for path in sorted(user_dir.glob("*.jinja")):
            rows.append(_row(load_template(str(path)), variables))
    if model:
        if embedded:
            rows.append(_row(load_template("gguf", embedded=embedded, model_name=model_name), variables))
        else:
            rows.append({"name": f"{model_name}:gguf", "origin": "gguf", "error": "no embedded chat template"})
    return rows
