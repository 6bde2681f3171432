"""Template-lab commands: lint, diff, fit, and render's --show / --tokens views."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from harness.errors import CommandError
from harness.readers import parse_vars, read_messages
from harness.untrusted import visible_line


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
    from harness.lab.audit import capabilities
    from harness.lab.lint import has_errors, lint

    backend, variables = _tokenizer_and_vars(args.model, args.var)
    template = _template(args.template, backend)
    findings, markers = lint(template, variables, backend)
    if args.messages:
        findings += content_findings(template, variables, backend, read_messages(args.messages))
    caps = capabilities(template, variables)
    named = _named_templates(args, backend, variables)
    if args.json:
        json.dump({"template": template.name, "findings": [f.to_dict() for f in findings],
                   "markers": markers.to_dict() if markers else None, "capabilities": caps,
                   **({"named_templates": named} if named else {})},
                  sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for name, report in named.items():
            for f in report["findings"]:
                print(f"{name}: {f['code']} {f['severity']}: {f['message']}")
            print(f"{name}: capabilities: " + ", ".join(f"{k}={v}" for k, v in report["capabilities"].items()))
        for f in findings:
            print(visible_line(f"{template.name}: {f.code} {f.severity}: {f.message}" + (f" [{f.probe}]" if f.probe else "")))
        print(visible_line(f"{template.name}: capabilities: " + ", ".join(f"{k}={v}" for k, v in caps.items())))
        count = {level: sum(f.severity == level for f in findings) for level in ("error", "warning", "info")}
        print(f"{template.name}: {count['error']} error(s), {count['warning']} warning(s), {count['info']} note(s)")
    return 1 if has_errors(findings) else 0


def _named_templates(args: argparse.Namespace, backend, variables) -> dict:
    """With ``gguf --model M``: every named template the GGUF holds, linted too."""
    if args.template != "gguf" or backend is None:
        return {}
    from harness.lab.lint import lint_named
    from harness.models.gguf import read_gguf_info

    return lint_named(read_gguf_info(backend.info.path), backend.info.name, variables)


def content_findings(template, variables, backend, conversation) -> list:
    """L013: message content that the model's tokenizer turns into control tokens."""
    from harness.generation.evaluation import find_field_injections, find_injections, message_fields
    from harness.lab.lint import Finding
    from harness.prompt.modes import plan_prompt

    if backend is None:
        raise CommandError("lint --messages needs --model (control tokens are the model's)")
    plan = plan_prompt(conversation, template, "as-is", variables=variables)
    found = [*find_injections(backend, plan.prompt, plan.segments),
             *find_field_injections(backend, message_fields(conversation))]
    return [Finding("L013", "warning", i.describe(), "messages") for i in found]


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
        json.dump({"a": a, "b": b, "equal": a == b, "chars": [c.to_dict() for c in chars],
                   "tokens": [c.to_dict() for c in tokens] if tokens is not None else None},
                  sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if a == b:
        print("identical renderings")
        return 0
    print(f"--- {args.template_a}\n+++ {args.template_b}")
    print("\n".join(visible_line(line) for line in describe(chars, "chars")))
    if tokens is not None:
        print("token-level:")
        print("\n".join(visible_line(line) for line in describe(tokens, "tokens")))
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
        json.dump({"model": args.model, "ranking": [r.to_dict() for r in rows]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"{'rank':4} {'template':16} {'total bits':>10} {'content':>9} {'scaffold':>9} {'end-turn':>9}"
          "  (content, scaffold: bits per byte; end-turn: bits of the close marker's bytes)")
    for i, r in enumerate(rows, 1):
        if r.error:
            print(visible_line(f"{i:4} {r.template:16} error: {r.error}"))
            continue
        print(f"{i:4} {r.template:16} {r.score:10.1f} {_f(r.content_bits_per_byte)} "
              f"{_f(r.scaffold_bits_per_byte)} {_f(r.end_of_turn_bits)}")
    return 0


def _f(x: float | None) -> str:
    return f"{x:9.3f}" if x is not None else f"{'-':>9}"


def render_view(args: argparse.Namespace, plan) -> str:
    """render --show / --tokens output (needs --model for token boundaries)."""
    from harness.lab.show import show_segments, show_tokens, token_table

    colour = sys.stdout.isatty() and not args.no_color
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
        print(f"harness: warning: {visible_line(injection.describe())}", file=sys.stderr)
    if args.tokens:
        return token_table(rows) + "\n"
    return show_tokens([(p, role, sp) for _, p, role, sp in rows], colour) + "\n"
