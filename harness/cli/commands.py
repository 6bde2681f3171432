"""The non-interactive commands: render, generate, score, models, templates (and chat's setup).

Each takes parsed arguments, writes its output to stdout and returns an exit code; errors are
raised as HarnessError for the CLI to report.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from harness.cli import lab
from harness.cli.doctor import cmd_doctor
from harness.errors import CommandError
from harness.generation.profiles import Profile, default_profile, load_profile
from harness.readers import parse_bias, parse_vars, read_messages
from harness.untrusted.terminal import message, write, write_json


def run(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "render": cmd_render, "generate": cmd_generate, "score": cmd_score,
        "models": cmd_models, "templates": cmd_templates, "chat": cmd_chat,
        "lint": lab.cmd_lint, "diff": lab.cmd_diff, "fit": lab.cmd_fit, "import": cmd_import,
        "run": cmd_run, "summary": cmd_summary, "report": cmd_report, "doctor": cmd_doctor,
    }
    return handlers[args.command](args)


def _profile(args: argparse.Namespace) -> Profile:
    spec = getattr(args, "profile", None)
    return load_profile(spec) if spec else default_profile()


def sampling_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling settings the command line names (flags parsed through the settings schema;
    --bias adds to the profile's biases)."""
    from harness.generation.settings import SETTINGS

    given = vars(args)
    changes: dict[str, Any] = {s.name: given[s.name] for s in SETTINGS if s.flag and s.name in given}
    bias = parse_bias(getattr(args, "bias", []) or [])
    if bias:
        changes["logit_bias"] = bias
    return changes


def explicit_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the command line says about opening a workbench (None: not said)."""
    return {"model": getattr(args, "model", None), "backend": getattr(args, "backend", None),
            "template": getattr(args, "template", None),
            "variables": _variables(args) or None,
            "n_ctx": getattr(args, "n_ctx", None), "threads": getattr(args, "threads", None),
            "literal_content": True if getattr(args, "literal_content", False) else None,
            "context_overflow": getattr(args, "context_overflow", None),
            "engine": engine_options(args)}


def engine_options(args: argparse.Namespace):
    """The llama.cpp load options the command line sets (None: none)."""
    from harness.backends.base import EngineOptions

    given = {k: getattr(args, k, None) for k in EngineOptions.FIELDS}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    try:
        return EngineOptions.from_mapping(given)
    except ValueError as exc:
        raise CommandError(f"--{str(exc).replace('_', '-')}") from None


def _variables(args: argparse.Namespace) -> dict[str, Any]:
    """--var settings, and --date as the variable ``strftime_now`` (a date string pins it)."""
    variables = parse_vars(getattr(args, "var", []) or [])
    if getattr(args, "date", None):
        variables["strftime_now"] = args.date
    return variables


def open_model(args: argparse.Namespace, profile: Profile | None = None):
    """The API's model for what the command line names, over `profile` (a harness.api.Model)."""
    from harness.api import open as open_api

    options = explicit_options(args)
    engine = options.pop("engine")
    return open_api(**options, engine=engine.to_dict() if engine else None, profile=profile or default_profile(),
                    **sampling_from_args(args))


def _mode_text(args: argparse.Namespace) -> str:
    if args.prefill and args.mode not in ("prefill", "impersonate"):
        raise CommandError("--prefill only applies to --mode prefill or impersonate")
    return args.prefill


def cmd_render(args: argparse.Namespace) -> int:
    from harness.api import render

    conversation = read_messages(args.messages)
    if not args.model and not args.template:
        raise CommandError("render needs --template (or --model to use its embedded template)")
    plan = render(conversation, template=args.template, model=args.model, mode=args.mode,
                  text=_mode_text(args), variables=_variables(args))
    if args.show or args.tokens:
        write(lab.render_view(args, plan), end="", flush=True)
    elif args.json:
        write_json({"prompt": plan.prompt, "segments": [s.to_dict() for s in plan.segments]})
    else:
        write(plan.prompt, exact=True, end="")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """One turn through the API; tokens stream to stdout (or JSON at the end), notices to stderr."""
    from harness.interrupt import sigint_flag

    conversation = read_messages(args.messages)
    text = _mode_text(args)
    with open_model(args, _profile(args)) as model, sigint_flag() as interrupted:
        result = model.generate(conversation, args.mode, text, on_token=None if args.json else _print_stream,
                                should_stop=interrupted)
        if args.json:
            write_json(result.to_dict())
        else:
            write("", flush=True)
        _notices(result.dropped, model.info.n_ctx, result.warnings, result.turn.prepared.decode_notice())
        if result.stop_reason == "interrupted":
            message("[interrupted]")
    return 0


def _notices(dropped: int, n_ctx: int, warnings: list[str], decode: str | None = None) -> None:
    """A prompt's notices, on stderr."""
    if decode:
        message(decode)
    if dropped:
        message(f"notice: dropped the {dropped} oldest message(s) to fit the context of {n_ctx} tokens")
    for warning in warnings:
        message(f"warning: {warning}")


def _print_stream(event) -> None:
    # a terminal gets control characters shown (a token can be a raw ESC); a pipe gets the bytes
    write(event.text, exact=True, end="")


def cmd_score(args: argparse.Namespace) -> int:
    from harness.cli.score_reference import (
        merge_reference,
        print_reference,
        score_against_reference,
    )
    from harness.generation.records import role_summary_lines

    if args.text:
        from harness.cli.experiments import cmd_score_text

        return cmd_score_text(args)
    conversation = read_messages(args.messages)
    with open_model(args) as model:
        result = model.score(conversation)
        extra = {}
        if args.reference:
            if args.backend:
                raise CommandError("--reference needs a local --model (both models' full distributions)")
            from harness.generation.evaluation import encode_prompt

            bench, plan = model.bench, model.render(conversation, "as-is")
            bench.evaluator.forget()
            extra = score_against_reference(
                args.reference, args.threads, bench.backend, result.tokens, text=plan.prompt, segments=plan.segments,
                encode=lambda b: encode_prompt(b, plan.prompt, plan.segments, literal_content=bench.literal_content))
    if args.json:
        write_json(merge_reference(result.to_dict(), extra))
    else:
        _notices(0, 0, result.warnings)
        for line in role_summary_lines(result.tokens):
            write(line)
        print_reference(extra)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from harness.models.table import describe_known_models

    rows = describe_known_models()
    if args.json:
        write_json(rows, indent=2)
        return 0
    for row in rows:
        if "error" in row:
            write(f"{row['name']:12} unavailable: {row['error']}")
            continue
        write(f"{row['name']:12} {row['architecture']:8} {row['size_mb']:7.1f} MB  vocab {row['n_vocab']:>6}  "
              f"ctx {row['context_length']:>6}  eos {row['eos']!r:14} eog {row['eog']}  "
              f"template {'embedded' if row['chat_template'] else 'none'}")
        write(f"{'':12} {row['description']} — {row['path']}")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from harness.models.table import describe_templates

    rows = describe_templates(args.model)
    if args.json:
        write_json(rows, indent=2)
        return 0
    for row in rows:
        write(f"{row['name']}  ({row['origin']})", one_line=True)
        if "error" in row:
            write(f"    error: {row['error']}", one_line=True)
            continue
        m = row["markers"]
        for role in ("system", "user", "assistant"):
            if role in m["opens"]:
                write(f"    {role:9} open {m['opens'][role]!r:48} close {m['closes'][role]!r}")
        write(f"    generation prompt {m['generation_prompt']!r}"
              + ("   (system folded into the first user turn)" if m["system_folded"] else ""))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``harness import FILE [--name NAME] [--force]``: convert FILE into the user templates."""
    from harness.lab.importers import import_templates

    name, written = import_templates(args.file, name=args.name, force=args.force)
    for item in written:
        write(f"{item.path}  ({item.kind})", one_line=True)
        for note in item.notes:
            write(f"    {note}", one_line=True)
    write(f"use it with: --template {name}", one_line=True)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from harness.cli.experiments import cmd_run as run_experiment

    return run_experiment(args)


def cmd_summary(args: argparse.Namespace) -> int:
    from harness.cli.experiments import cmd_summary as print_summary

    return print_summary(args)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.cli.experiments import cmd_report as write_report

    return write_report(args)


def cmd_chat(args: argparse.Namespace) -> int:
    from harness.repl.chat import run_chat

    return run_chat(explicit_options(args), _profile(args), resume=args.resume, log=args.log,
                    system=args.system)
