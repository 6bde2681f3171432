"""The non-interactive commands: render, generate, score, models, templates (and chat's setup).

Each takes parsed arguments, writes its output to stdout and returns an exit code; errors are
raised as HarnessError for the CLI to report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from harness import lab_commands as lab
from harness.cli import parse_bias, parse_vars, read_messages
from harness.errors import CommandError
from harness.profiles import Profile, default_profile, load_profile
from harness.sampling import SamplingParams


def run(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "render": cmd_render, "generate": cmd_generate, "score": cmd_score,
        "models": cmd_models, "templates": cmd_templates, "chat": cmd_chat,
        "lint": lab.cmd_lint, "diff": lab.cmd_diff, "fit": lab.cmd_fit, "import": cmd_import,
        "run": cmd_run, "summary": cmd_summary, "report": cmd_report,
    }
    return handlers[args.command](args)


def _profile(args: argparse.Namespace) -> Profile:
    spec = getattr(args, "profile", None)
    return load_profile(spec) if spec else default_profile()


def sampling_from_args(args: argparse.Namespace, base: SamplingParams) -> SamplingParams:
    changes: dict[str, Any] = {}
    for flag, name in [("eos", "eos"), ("max_tokens", "max_tokens"), ("seed", "seed"),
                       ("temperature", "temperature"), ("top_k", "top_k"), ("top_p", "top_p"),
                       ("min_p", "min_p"), ("repeat_penalty", "repeat_penalty")]:
        value = getattr(args, flag, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "stop", None):
        changes["stop"] = tuple(args.stop)
    bias = parse_bias(getattr(args, "bias", []) or [])
    if bias:
        changes["logit_bias"] = {**base.logit_bias, **bias}
    return base.updated(**changes)


def open_workbench(args: argparse.Namespace, profile: Profile):
    from harness.models import open_backend
    from harness.paths import user_templates_dir
    from harness.workbench import Workbench, choose_template

    if getattr(args, "backend", None):
        from harness.backends.servers import open_remote_workbench

        if args.model or getattr(args, "literal_content", False):
            raise CommandError("--backend generates on a server: it takes neither --model nor "
                               "--literal-content (the server tokenizes the whole prompt)")
        return open_remote_workbench(args.backend, args.template or profile.template,
                                     {**profile.vars, **parse_vars(args.var)})
    backend = open_backend(args.model or profile.model, n_ctx=args.n_ctx or profile.n_ctx,
                           n_threads=getattr(args, "threads", None))
    try:
        template = choose_template(args.template or profile.template, backend.info.chat_template,
                                   backend.info.name, user_templates_dir())
        bench = Workbench(backend, template, {**profile.vars, **parse_vars(args.var)})
        bench.literal_content = bool(getattr(args, "literal_content", False) or profile.literal_content)
        return bench
    except BaseException:
        backend.close()
        raise


def _mode_text(args: argparse.Namespace) -> str:
    if args.prefill and args.mode not in ("prefill", "impersonate"):
        raise CommandError("--prefill only applies to --mode prefill or impersonate")
    return args.prefill


def cmd_render(args: argparse.Namespace) -> int:
    from harness.modes import plan_prompt
    from harness.paths import user_templates_dir
    from harness.workbench import choose_template

    conversation = read_messages(args.messages)
    variables: dict[str, Any] = {}
    embedded, model_name = None, "model"
    if args.model:
        from harness.gguf import read_gguf_info
        from harness.models import resolve_model

        model_name, path = resolve_model(args.model)
        info = read_gguf_info(path)
        embedded = info.chat_template
        variables = {"bos_token": info.bos_token or "", "eos_token": info.eos_token or ""}
    elif not args.template:
        raise CommandError("render needs --template (or --model to use its embedded template)")
    variables.update(parse_vars(args.var))
    template = choose_template(args.template, embedded, model_name, user_templates_dir())
    plan = plan_prompt(conversation, template, args.mode, text=_mode_text(args), variables=variables)
    if args.show or args.tokens:
        sys.stdout.write(lab.render_view(args, plan))
    elif args.json:
        json.dump({"prompt": plan.prompt, "segments": [s.to_dict() for s in plan.segments]},
                  sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(plan.prompt)
    sys.stdout.flush()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from harness.interrupt import sigint_flag
    from harness.records import generation_json

    profile = _profile(args)
    params = sampling_from_args(args, profile.sampling)
    conversation = read_messages(args.messages)
    text = _mode_text(args)
    bench = open_workbench(args, profile)
    try:
        plan, dropped = bench.fit_conversation(conversation, args.mode, text, overflow_policy(args, profile))
        _warn(bench, plan, dropped)
        stream = None if args.json else _print_stream
        with sigint_flag() as interrupted:
            gen = bench.generate(plan, params, on_token=stream, should_stop=interrupted)
        if args.json:
            json.dump(generation_json(gen, bench.piece_text), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        if gen.stop_reason == "interrupted":
            print("[interrupted]", file=sys.stderr)
    finally:
        bench.close()
    return 0


def overflow_policy(args: argparse.Namespace, profile: Profile) -> str:
    return getattr(args, "context_overflow", None) or profile.context_overflow


def _warn(bench, plan, dropped: int) -> None:
    if dropped:
        print(f"harness: notice: dropped the {dropped} oldest message(s) to fit the context "
              f"of {bench.backend.info.n_ctx} tokens", file=sys.stderr)
    for injection in bench.injections(plan):
        print(f"harness: warning: {injection.describe()}", file=sys.stderr)


def _print_stream(event) -> None:
    sys.stdout.write(event.text)
    sys.stdout.flush()


def cmd_score(args: argparse.Namespace) -> int:
    from harness.records import role_summary_lines, score_json

    if args.text:
        from harness.experiment_commands import cmd_score_text

        return cmd_score_text(args)
    conversation = read_messages(args.messages)
    bench = open_workbench(args, default_profile())
    try:
        plan, tokens = bench.score(conversation)
        warnings = [i.describe() for i in bench.injections(plan)]
        if args.json:
            json.dump(score_json(plan.prompt, tokens, bench.piece_text) | {"warnings": warnings},
                      sys.stdout, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            for warning in warnings:
                print(f"harness: warning: {warning}", file=sys.stderr)
            for line in role_summary_lines(tokens):
                print(line)
    finally:
        bench.close()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from harness.model_table import describe_known_models

    rows = describe_known_models()
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['name']:12} unavailable: {row['error']}")
            continue
        print(f"{row['name']:12} {row['architecture']:8} {row['size_mb']:7.1f} MB  vocab {row['n_vocab']:>6}  "
              f"ctx {row['context_length']:>6}  eos {row['eos']!r:14} eog {row['eog']}  "
              f"template {'embedded' if row['chat_template'] else 'none'}")
        print(f"{'':12} {row['description']} — {row['path']}")
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from harness.model_table import describe_templates

    rows = describe_templates(args.model)
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['origin']})")
        if "error" in row:
            print(f"    error: {row['error']}")
            continue
        m = row["markers"]
        for role in ("system", "user", "assistant"):
            if role in m["opens"]:
                print(f"    {role:9} open {m['opens'][role]!r:48} close {m['closes'][role]!r}")
        print(f"    generation prompt {m['generation_prompt']!r}"
              + ("   (system folded into the first user turn)" if m["system_folded"] else ""))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from harness.importers import cmd_import as import_templates

    return import_templates(args)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.experiment_commands import cmd_run as run_experiment

    return run_experiment(args)


def cmd_summary(args: argparse.Namespace) -> int:
    from harness.experiment_commands import cmd_summary as print_summary

    return print_summary(args)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.experiment_commands import cmd_report as write_report

    return write_report(args)


def cmd_chat(args: argparse.Namespace) -> int:
    from harness.repl.chat import run_chat

    return run_chat(args, _profile(args))
