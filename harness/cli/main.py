"""Command line: argv -> command. The one place errors become messages and exit codes.

Exit codes: 0 ok, 1 a HarnessError (one line on stderr), 2 bad usage (argparse), 130 interrupted;
``lint``: 0 clean, 1 findings at or above ``--fail-on``, 2 bad usage or a HarnessError.
Heavy modules (llama_cpp, prompt_toolkit, numpy) are imported inside the commands that need
them, so ``harness --help`` starts fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness import __version__
from harness.errors import HarnessError
from harness.prompt.mode_names import MODES, REPLY


class _Parser(argparse.ArgumentParser):
    """argparse writing through the output rule: usage, help and errors echo argv (an ESC
    in an argument is shown, not sent). Subparsers inherit the class."""

    def _print_message(self, message: str, file=None) -> None:  # noqa: ANN001
        from harness.untrusted.terminal import stderr, write

        if message:
            write(message, stream=file or stderr(), end="")


def _add_model_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--model", "-m", required=required,
                   help="GGUF path, or smollm2 (default) / gemma3-270m")
    p.add_argument("--template", "-t", help="gguf (embedded; default), a templates/ name, or a .jinja path")
    p.add_argument("--var", action="append", default=[], metavar="KEY=JSON",
                   help="set or override a template variable (repeatable)")
    p.add_argument("--date", metavar="YYYY-MM-DD",
                   help="pin the date strftime_now gives templates (the variable strftime_now)")
    p.add_argument("--n-ctx", type=int, default=None, help="context window (default 4096)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--literal-content", action="store_true",
                   help="tokenize message content as plain text (no control tokens from content)")
    _add_engine_args(p)
    from harness.generation.settings import OVERFLOW_POLICIES

    p.add_argument("--context-overflow", choices=OVERFLOW_POLICIES, default=None,
                   help="when the prompt does not fit n_ctx (default: error)")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    """llama.cpp load options (harness.backends.base.EngineOptions; profile key engine:)."""
    p.add_argument("--n-gpu-layers", type=int, default=None, metavar="N", help="layers offloaded to the GPU (-1: all)")
    p.add_argument("--flash-attn", choices=("on", "off"), default=None, help="flash attention (default on)")
    p.add_argument("--type-k", default=None, metavar="T", help="K cache type: f16 (default), q8_0, q4_0, ...")
    p.add_argument("--type-v", default=None, metavar="T",
                   help="V cache type: bf16 (default), f16, ... (quantised needs flash attention)")
    p.add_argument("--no-mmap", dest="use_mmap", action="store_const", const=False, default=None,
                   help="read the model into memory instead of mapping it")
    p.add_argument("--n-batch", type=int, default=None, metavar="N", help="llama.cpp batch size (default 512)")
    p.add_argument("--repack", action="store_const", const=True, default=None,
                   help="llama.cpp's repacked CPU weights (faster prompts; values then depend on batch shape)")
    p.add_argument("--kv-unified", action="store_const", const=True, default=None,
                   help="one KV stream for all sequences (values then depend on batch-mates)")


def _add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", metavar="URL",
                   help="generate on a server instead of --model: llama-server+http://HOST:PORT, "
                        "openai+http://HOST:PORT (/v1/completions), or http://HOST:PORT to detect")


def _add_mode_args(p: argparse.ArgumentParser, default: str = REPLY) -> None:
    p.add_argument("--messages", required=True, metavar="F", help="YAML/JSON messages file")
    p.add_argument("--mode", choices=MODES, default=default,
                   help=f"what the model is asked to write (default {default}; docs/templates.md#modes)")
    p.add_argument("--prefill", default="", metavar="TEXT",
                   help="start of the assistant turn (mode prefill) or of the user turn (impersonate)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    from harness.generation.settings import SETTINGS, parse

    for setting in SETTINGS:
        if not setting.flag:
            continue
        flag = "--" + setting.name.replace("_", "-")
        kind = (lambda name: lambda word: _flag_value(parse, name, word))(setting.name)
        # not given: no attribute at all (a given value may be None: --seed -1 is a random seed)
        if setting.name == "stop":
            p.add_argument(flag, action="append", default=argparse.SUPPRESS, metavar="TEXT", help=setting.help)
        elif setting.name == "eos":
            p.add_argument(flag, choices=("stop", "continue", "ban"), default=argparse.SUPPRESS,
                           help=setting.help)
        else:
            p.add_argument(flag, type=kind, default=argparse.SUPPRESS, metavar=setting.name.upper(),
                           help=setting.help)
    p.add_argument("--bias", action="append", default=[], metavar="TOKEN=VALUE",
                   help="logit bias by token text, or #ID for an id (repeatable); -inf bans; +inf and nan are refused")
    p.add_argument("--profile", "-p", help="profile name or YAML path (flags override it)")


def _flag_value(parse, name: str, word: str):
    from harness.errors import HarnessError

    try:
        return parse(name, word)
    except HarnessError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness", description="Raw text-completion chat harness: templates, EOS policies, "
        "impersonation and per-role entropy on GGUF models.")
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("chat", help="interactive REPL")
    _add_model_args(p)
    _add_backend_arg(p)
    p.add_argument("--profile", "-p", help="profile name or YAML path")
    p.add_argument("--log", metavar="PATH", help="JSONL log file (default: in the data directory)")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="ID|LOG",
                   help="continue a saved session (ID, ID prefix or file) or a .jsonl log (default: the newest)")

    p = sub.add_parser("render", help="print the exact prompt a template makes of a conversation")
    _add_model_args(p)
    _add_mode_args(p, default=REPLY)
    p.add_argument("--json", action="store_true", help="print {prompt, segments}")
    p.add_argument("--show", action="store_true", help="show token boundaries, roles and special tokens")
    p.add_argument("--tokens", action="store_true", help="list id, piece and role per token (needs --model)")
    p.add_argument("--no-color", action="store_true", help="plain text for --show")

    p = sub.add_parser("generate", help="generate once and print text or JSON")
    _add_model_args(p)
    _add_backend_arg(p)
    _add_mode_args(p)
    _add_sampling_args(p)
    p.add_argument("--json", action="store_true", help="print the turn, its tokens and statistics as JSON")

    p = sub.add_parser("score", help="per-token statistics of the rendered conversation itself")
    _add_model_args(p)
    p.add_argument("--backend", metavar="URL",
                   help="score on a server that gives prompt logprobs (vLLM: openai+http://HOST:PORT)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--messages", metavar="F", help="YAML/JSON messages file, scored as the template renders it")
    source.add_argument("--text", metavar="F", help="score a raw text file (no template; llama.cpp perplexity)")
    p.add_argument("--reference", metavar="R",
                   help="teacher-force the same text through a second model (name or GGUF path): "
                        "KL and rank under one vocabulary, bits per byte per role always")
    p.add_argument("--json", action="store_true", help="print every token's statistics as JSON")

    p = sub.add_parser("run", help="run an experiment matrix into a SQLite database (resumable)")
    p.add_argument("experiment", metavar="EXPERIMENT.yaml", help="the experiment file (docs/experiments.md)")
    p.add_argument("--db", metavar="PATH", help="SQLite database (default: in the data directory)")
    p.add_argument("--force-new", action="store_true", help="start a new run even if this one exists")
    p.add_argument("--backend", metavar="URL[,URL...]",
                   help="run the cells on servers (one model) instead of loading the experiment's "
                        "model; several comma-separated URLs share the cells")
    p.add_argument("--files-from", action="append", default=[], metavar="DIR",
                   help="a folder besides the experiment's own that its file: entries may name (repeatable)")
    p.add_argument("--parallel", type=int, default=1, metavar="K",
                   help="with --backend: cells each server runs at once (llama-server: start it with "
                        "--parallel K or more slots)")
    p.add_argument("--json", action="store_true", help="print the run and its summary as JSON")

    p = sub.add_parser("summary", help="print the per-condition, per-role summary of a run")
    p.add_argument("db", metavar="DB", help="an experiment database written by `harness run`")
    p.add_argument("--run", type=int, default=None, metavar="ID", help="run id (default: the newest)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="two conditions (a label or a part only one label contains): A - B per role")
    p.add_argument("--metric", default="entropy_bits",
                   help="with --compare: entropy_bits (default), surprisal_bits, sampling_entropy_bits, "
                        "varentropy_bits2, typicality_bits")
    p.add_argument("--swapped", action="store_true",
                   help="with --compare: B's user/assistant tokens against A's assistant/user tokens "
                        "(a {score: swap_roles} condition against score)")
    p.add_argument("--first-k", type=int, default=8, metavar="K",
                   help="with --compare: position-matched means over the first K tokens of a turn")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--markdown", action="store_true", help="the summary table as Markdown")

    p = sub.add_parser("report", help="write a self-contained HTML report of a run or a chat log")
    p.add_argument("source", metavar="DB|LOG", help="experiment .sqlite or chat .jsonl log")
    p.add_argument("--run", type=int, default=None, metavar="ID", help="run id (default: the newest)")
    p.add_argument("--html", required=True, metavar="OUT.html", help="where to write the page")
    p.add_argument("--max-turns", type=int, default=50, metavar="N",
                   help="turns shown in the transcript (default 50; the summary covers all)")

    p = sub.add_parser("lint", help="check templates: a static pass (no render), then probe conversations")
    p.add_argument("templates", nargs="*", metavar="TEMPLATE",
                   help="a .jinja path, a folder of them, a library name, or gguf (the default with --model)")
    p.add_argument("--model", "-m", nargs="+", default=[], metavar="GGUF",
                   help="lint these models' templates and tokenizers (give templates before --model)")
    p.add_argument("--messages", metavar="F", help="also flag control-token strings in these messages")
    p.add_argument("--var", action="append", default=[], metavar="KEY=JSON",
                   help="set or override a template variable (repeatable)")
    p.add_argument("--against-config", metavar="FILE",
                   help="compare each template with the chat_template of this tokenizer_config.json")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                   help="how findings are printed (default text)")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--fail-on", choices=("error", "warning", "info"), default="error",
                   help="exit 1 when a finding is this severe or more (default: error)")
    p.add_argument("--ignore-file", metavar="FILE",
                   help="suppressions, each with a reason (default: ./.harness-lint-ignore if present)")
    p.add_argument("--static", action="store_true", help="only the static pass: nothing is rendered")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S",
                   help="seconds for one file: a template file, or all templates of one GGUF (default 60)")
    p.set_defaults(error_exit=2)  # 1 means findings here: a problem running lint is 2

    p = sub.add_parser("diff", help="character and token differences of two templates' renderings")
    p.add_argument("template_a", help="gguf, a library name or a .jinja path")
    p.add_argument("template_b", nargs="?", default=None, help="the template to compare with (or --against)")
    p.add_argument("--against", metavar="URL",
                   help="compare with a server's rendering (llama-server's /apply-template)")
    p.add_argument("--messages", required=True, metavar="F", help="YAML/JSON messages file")
    p.add_argument("--model", "-m", help="token-level diff with this model's tokenizer")
    p.add_argument("--mode", choices=MODES, default=REPLY, help="the prompt mode both render (default reply)")
    p.add_argument("--var", action="append", default=[], metavar="KEY=JSON",
                   help="set or override a template variable (repeatable)")
    p.add_argument("--json", action="store_true", help="print both renderings and their differences as JSON")

    p = sub.add_parser("fit", help="rank templates by how at home the model is in each")
    p.add_argument("--model", "-m", required=True, help="GGUF path, or smollm2 / gemma3-270m")
    p.add_argument("--messages", required=True, metavar="F", help="YAML/JSON messages file")
    p.add_argument("--templates", default="all", help="all, or a comma-separated list")
    p.add_argument("--n-ctx", type=int, default=None, help="context window (default 4096)")
    p.add_argument("--json", action="store_true", help="print the ranking as JSON")

    p = sub.add_parser("import", help="convert a SillyTavern preset, text-generation-webui template "
                                      "or tokenizer_config.json into a user template")
    p.add_argument("file", metavar="FILE", help="SillyTavern instruct preset (.json), "
                   "text-generation-webui instruction template (.yaml) or tokenizer_config.json")
    p.add_argument("--name", help="template name (default: the preset's name, the file's, or "
                   "the folder's for tokenizer_config.json)")
    p.add_argument("--force", action="store_true", help="overwrite an existing user template")

    p = sub.add_parser("models", help="list the known models")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = sub.add_parser("doctor", help="the installed llama.cpp build against what this CPU grants")
    p.add_argument("--check", action="store_true", help="run a small batched decode (setup's check)")
    p.add_argument("--brief", action="store_true", help="one line")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("templates", help="list templates with their derived turn markers")
    p.add_argument("--model", "-m", help="also show this model's embedded template")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    from harness.cli import commands

    try:
        return commands.run(args)
    except HarnessError as exc:
        from harness.untrusted.terminal import message

        message(f"error: {exc}")
        return getattr(args, "error_exit", 1)
    except KeyboardInterrupt:
        from harness.untrusted.terminal import message

        message("interrupted")
        return 130
    except BrokenPipeError:
        return 0
