"""Template-lab commands: lint, diff, fit, and render's --show / --tokens views."""

from __future__ import annotations

import argparse
from typing import Any

from harness.errors import CommandError
from harness.readers import parse_vars, read_messages
from harness.untrusted.terminal import is_terminal, message, write, write_json


def _tokenizer_and_vars(model: str | None, var_items) -> tuple[Any, dict[str, Any]]:
    """A vocabulary-only backend for `model` (or None) and template variables from it."""
    variables: dict[str, Any] = {}
    backend = None
    if model:
        from harness.models.registry import open_backend

        backend = open_backend(model, vocab_only=True)
        variables = {"bos_token": backend.info.bos_text, "eos_token": backend.info.eos_text}
    variables.update(parse_vars(var_items))
    return backend, variables


def _template(spec: str, backend) -> Any:
    from harness.generation.open import choose_template

    if backend is None:
        return choose_template(spec)
    return choose_template(spec, backend.info.chat_template, backend.info.name)


def cmd_lint(args: argparse.Namespace) -> int:
    """Lint templates, folders and models; print text, JSON or SARIF; exit 0/1 by --fail-on
    (2, bad usage, comes from main through the parser's ``error_exit``)."""
    from harness import __version__
    from harness.lab.lint.files import Options, lint_all
    from harness.lab.lint.model_rules import config_templates
    from harness.lab.lint.report import exit_code, text_lines, to_json, to_sarif
    from harness.lab.lint.suppress import load_suppressions

    fmt = "json" if args.json else args.format
    if not 0 < args.time_limit < float("inf"):  # nan and inf too: a limit that never ends is none
        raise CommandError("--time-limit must be a positive number of seconds")
    options = Options(variables=parse_vars(args.var), static_only=args.static, time_limit=args.time_limit,
                      with_capabilities=fmt == "json" or not _many(args.templates),
                      messages=read_messages(args.messages) if args.messages else None,
                      config=config_templates(args.against_config) if args.against_config else None,
                      config_file=args.against_config or "", suppressions=load_suppressions(args.ignore_file))
    if not args.templates and not args.model:
        raise CommandError("lint needs a template, a folder or --model", hint="e.g. harness lint templates/")
    results = lint_all(args.templates, args.model, options)
    if fmt in ("json", "sarif"):
        write_json(to_json(results) if fmt == "json" else to_sarif(results, __version__), indent=2)
    else:
        for line in text_lines(results):
            write(line, one_line=True)
    return exit_code(results, args.fail_on)


def _many(specs: list[str]) -> bool:
    """Several templates or a folder: the text report leaves out the capability lines."""
    from pathlib import Path

    return len(specs) > 1 or any(Path(spec).is_dir() for spec in specs)


def cmd_diff(args: argparse.Namespace) -> int:
    from harness.lab.diffing import describe, diff_sequences
    from harness.prompt.modes import plan_prompt

    backend, variables = _tokenizer_and_vars(args.model, args.var)
    conversation = read_messages(args.messages)
    if (args.template_b is None) == (args.against is None):
        raise CommandError("diff compares two templates, or one template --against a server URL")
    if args.against is not None and args.mode != "reply":
        raise CommandError("--against renders with the generation prompt: use --mode reply")
    a = plan_prompt(conversation, _template(args.template_a, backend), args.mode, variables=variables).prompt
    if args.against is not None:
        from harness.lab.against import server_render

        b = server_render(args.against, conversation.to_dicts(), variables)
        args.template_b = args.against
    else:
        b = plan_prompt(conversation, _template(args.template_b, backend), args.mode, variables=variables).prompt
    chars = diff_sequences(a, b)
    tokens = None
    if backend is not None:
        def pieces(text: str) -> list[str]:
            return [backend.piece(i).decode("utf-8", "replace") for i in backend.tokenize(text)]

        tokens = diff_sequences(pieces(a), pieces(b))
    if args.json:
        write_json({"a": a, "b": b, "equal": a == b, "chars": [c.to_dict() for c in chars],
                    "tokens": [c.to_dict() for c in tokens] if tokens is not None else None}, indent=2)
        return 0
    if a == b:
        write("identical renderings")
        return 0
    write(f"--- {args.template_a}", one_line=True)
    write(f"+++ {args.template_b}", one_line=True)
    for line in describe(chars, "chars"):
        write(line, one_line=True)
    if tokens is not None:
        write("token-level:")
        for line in describe(tokens, "tokens"):
            write(line, one_line=True)
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from harness.generation.open import local_workbench
    from harness.lab.fit import rank_templates
    from harness.models.registry import open_backend
    from harness.prompt.templates import list_library

    conversation = read_messages(args.messages)
    backend = open_backend(args.model, n_ctx=args.n_ctx or 4096)
    try:
        names = list_library() if args.templates == "all" else args.templates.split(",")
        candidates = [_template(n, backend) for n in names]
        if args.templates == "all" and backend.info.chat_template:
            candidates.append(_template("gguf", backend))
        bench = local_workbench(backend, names[0] if names else None)
        rows = rank_templates(bench, conversation, candidates)
    finally:
        backend.close()
    if args.json:
        write_json({"model": args.model, "ranking": [r.to_dict() for r in rows]}, indent=2)
        return 0
    write(f"{'rank':4} {'template':16} {'total bits':>10} {'content':>9} {'scaffold':>9} {'end-turn':>9}"
          "  (content, scaffold: bits per byte; end-turn: bits of the close marker's bytes)")
    for i, r in enumerate(rows, 1):
        if r.error:
            write(f"{i:4} {r.template:16} error: {r.error}", one_line=True)
            continue
        write(f"{i:4} {r.template:16} {r.score:10.1f} {_f(r.content_bits_per_byte)} "
              f"{_f(r.scaffold_bits_per_byte)} {_f(r.end_of_turn_bits)}")
    return 0


def _f(x: float | None) -> str:
    return f"{x:9.3f}" if x is not None else f"{'-':>9}"


def render_view(args: argparse.Namespace, plan) -> str:
    """render --show / --tokens output (needs --model for token boundaries)."""
    from harness.lab.show import show_segments, show_tokens, token_table

    colour = is_terminal() and not args.no_color
    if args.model is None:
        if args.tokens:
            raise CommandError("--tokens needs --model (token boundaries come from its tokenizer)")
        return show_segments(plan.prompt, [(s.start, s.end, s.role) for s in plan.segments], colour) + "\n"
    from harness.generation.evaluation import encode_prompt, find_injections
    from harness.models.registry import open_backend

    backend = open_backend(args.model, vocab_only=True)
    try:
        literal = bool(args.literal_content)
        records = encode_prompt(backend, plan.prompt, plan.segments, literal_content=literal)
        rows = [(r.id, r.piece, r.role, backend.is_special(r.id)) for r in records]
        injections = [] if literal else find_injections(backend, plan.prompt, plan.segments)
    finally:
        backend.close()
    for injection in injections:
        message(f"warning: {injection.describe()}")
    if args.tokens:
        return token_table(rows) + "\n"
    return show_tokens([(p, role, sp) for _, p, role, sp in rows], colour) + "\n"
