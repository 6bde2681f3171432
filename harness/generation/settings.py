"""The sampling settings: declared once, here, and read by every place that takes them — CLI
flags, profiles, experiments, the REPL's ``/set``, the Python API and server requests.

Each :class:`Setting` says which YAML/JSON types it accepts, how a typed word (a flag, ``/set``)
becomes a value, and the rule a value must keep. Errors name the setting in ``field`` so callers
point at it without reading the message. No numpy here: ``harness --help`` builds its flags from
this table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from harness.errors import CommandError

EOS_STOP = "stop"
EOS_CONTINUE = "continue"
EOS_BAN = "ban"
EOS_POLICIES = (EOS_STOP, EOS_CONTINUE, EOS_BAN)
RANDOM_SEED = -1  # as llama.cpp: -1 asks for a random seed
MIROSTAT_MODES = (0, 2)  # off, or mirostat 2 (mirostat 1 needs the vocabulary size: not offered)
# Top-k probabilities a server is asked for per token (llama-server n_probs, OpenAI logprobs): the
# smallest k whose entropy bounds average at most 0.5 bits wide on the bundled models
# (bench/topk_bounds.py; bench/README.md has the figures and the cost per request).
DEFAULT_N_PROBS = 200
MAX_N_PROBS = 10_000

# What a prompt longer than the context does (profiles, /set, --context-overflow, the API).
OVERFLOW_ERROR = "error"
OVERFLOW_TRUNCATE = "truncate-oldest"  # drop the oldest non-system messages until it fits
OVERFLOW_POLICIES = (OVERFLOW_ERROR, OVERFLOW_TRUNCATE)


def parse_seed(word: str) -> int | None:
    """A seed as typed: a number >= 0, or -1 / random / none for a random one."""
    if word.strip().lower() in ("none", "random", ""):
        return None
    return int(word)


def parse_stop(word: str) -> tuple[str, ...]:
    """Stop strings as typed: none, a JSON list, or one string."""
    if not word or word.lower() == "none":
        return ()
    try:
        parsed = json.loads(word)
    except ValueError:
        return (word,)
    return tuple(str(s) for s in (parsed if isinstance(parsed, list) else [parsed]))


TOKEN_ID = "#"  # a logit-bias key "#N" is token id N; any other key is a token's text


def bias_token_id(key: str) -> int | None:
    """The id a logit-bias key names ("#2" -> 2), or None when the key is a token's text ("2")."""
    digits = key[len(TOKEN_ID):] if key.startswith(TOKEN_ID) else ""
    return int(digits) if digits.isascii() and digits.isdigit() else None


def _bias_key(key: Any) -> str:
    """A logit-bias key as read from YAML/JSON: a string as it is, an integer as its id form."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{TOKEN_ID}{key}"
    if not isinstance(key, str):
        raise CommandError(f"logit_bias: a key must be a token text or #id, got {key!r}", field="logit_bias")
    return key


def _no_word(word: str) -> Any:
    raise ValueError("set with its own syntax")


_NUM = (int, float)
# the sampler drops a token whose logit is not finite: +inf or nan would silently ban it
BIAS_RULE = "a bias is a finite number, or -inf to ban the token; to favour a token use e.g. 100"


def _bias_ok(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and (math.isfinite(value) or value == float("-inf")))


@dataclass(frozen=True)
class Setting:
    name: str
    types: tuple[type, ...]  # what a YAML/JSON value may be
    parse: Callable[[str], Any]  # a typed word -> value (ValueError when it is not one)
    valid: Callable[[Any], bool]
    rule: str  # what `valid` demands, said when a value breaks it
    help: str
    flag: bool = True  # has a --flag on generating commands


SETTINGS: tuple[Setting, ...] = (
    Setting("temperature", _NUM, float, lambda v: v >= 0, "must be >= 0", "0 is greedy"),
    Setting("top_k", (int,), int, lambda v: v >= 0, "must be >= 0 (0 disables it)", "keep the k most likely"),
    Setting("top_p", _NUM, float, lambda v: 0 < v <= 1, "must be in (0, 1]", "nucleus mass"),
    Setting("min_p", _NUM, float, lambda v: 0 <= v < 1, "must be in [0, 1)", "drop tokens below min_p x the top"),
    Setting("repeat_penalty", _NUM, float, lambda v: v > 0, "must be > 0", "1 is off"),
    Setting("repeat_last_n", (int,), int, lambda v: v >= 0, "must be >= 0",
            "tokens the penalties look back (0: no penalties)"),
    Setting("presence_penalty", _NUM, float, math.isfinite, "must be a finite number",
            "subtracted once from a token in the window (0 is off)"),
    Setting("frequency_penalty", _NUM, float, math.isfinite, "must be a finite number",
            "subtracted per occurrence in the window (0 is off)"),
    Setting("dry_multiplier", _NUM, float, lambda v: 0 <= v < math.inf, "must be >= 0 (0 is off)",
            "DRY: the penalty on a token extending a repetition (0 is off)"),
    Setting("dry_base", _NUM, float, lambda v: 1 <= v < math.inf, "must be >= 1",
            "DRY: the penalty grows by this factor per repeated token"),
    Setting("dry_allowed_length", (int,), int, lambda v: v >= 0, "must be >= 0",
            "DRY: repetitions this long go unpenalised"),
    Setting("dry_penalty_last_n", (int,), int, lambda v: v >= 0, "must be >= 0 (0 is off)",
            "DRY: tokens it looks back (breakers: newline : \" *)"),
    Setting("typical_p", _NUM, float, lambda v: 0 < v <= 1, "must be in (0, 1]",
            "locally typical mass (1 is off)"),
    Setting("xtc_probability", _NUM, float, lambda v: 0 <= v <= 1, "must be in [0, 1]",
            "chance a step excludes the top choices (0 is off)"),
    Setting("xtc_threshold", _NUM, float, lambda v: 0 < v <= 1, "must be in (0, 1]",
            "XTC excludes all but the least likely token this probable (above 0.5: off)"),
    Setting("mirostat", (int,), int, lambda v: v in MIROSTAT_MODES, "must be 0 (off) or 2",
            "2: mirostat 2 in place of top-k/typical/top-p/min-p/XTC and temperature"),
    Setting("mirostat_tau", _NUM, float, lambda v: v > 0, "must be > 0", "mirostat's target surprise, bits"),
    Setting("mirostat_eta", _NUM, float, lambda v: v > 0, "must be > 0", "mirostat's learning rate"),
    Setting("seed", (int, type(None)), parse_seed, lambda v: v is None or v >= 0,
            "must be >= 0, or -1 (random)", "-1 or random: a new seed each time"),
    Setting("max_tokens", (int,), int, lambda v: v > 0, "must be > 0", "tokens to generate at most"),
    Setting("stop", (list, tuple), parse_stop, lambda v: all(isinstance(s, str) for s in v),
            "must be a list of strings", "stop string (repeatable)"),
    Setting("eos", (str,), str, lambda v: v in EOS_POLICIES, f"must be one of {', '.join(EOS_POLICIES)}",
            "stop at end of turn, continue past it, or ban it"),
    Setting("n_probs", (int,), int, lambda v: 1 <= v <= MAX_N_PROBS, f"must be between 1 and {MAX_N_PROBS}",
            "servers: top-k probabilities asked per token (how tight the entropy bounds are)"),
    Setting("logit_bias", (dict,), _no_word, lambda v: all(_bias_ok(x) for x in v.values()),
            f"must map token texts or #ids to numbers ({BIAS_RULE})", "token text (or #id) -> added logit",
            flag=False),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def describe_types(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", list: "a list", tuple: "a list",
             dict: "a mapping", type(None): "null", bool: "a boolean"}
    if float in types:
        types = tuple(t for t in types if t is not int)
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _fail(name: str, message: str) -> CommandError:
    return CommandError(f"{name} {message}", field=name)


def coerce(name: str, value: Any) -> Any:
    """A setting's value as read from YAML/JSON/keywords, type-checked and normalised
    (seed -1 -> None, stop -> tuple); the rule is checked by :meth:`SamplingParams.validate`."""
    setting = BY_NAME.get(name)
    if setting is None:
        raise CommandError(f"unknown sampling setting '{name}'", field=name,
                           hint=f"known: {', '.join(BY_NAME)}")
    if isinstance(value, bool) or not isinstance(value, setting.types):
        raise CommandError(f"{name}: expected {describe_types(setting.types)}, got {value!r}", field=name)
    if name == "seed" and value == RANDOM_SEED:
        return None
    if name == "stop":
        return tuple(value)
    if name == "logit_bias":
        for key, bias in value.items():
            if isinstance(bias, bool) or not isinstance(bias, int | float):
                raise CommandError(f"logit_bias.{key}: expected a number, got {bias!r}", field=f"logit_bias.{key}")
            if not _bias_ok(bias):
                raise CommandError(f"logit_bias.{key}: {bias!r} is not a bias", field=f"logit_bias.{key}",
                                   hint=BIAS_RULE)
        return {_bias_key(k): float(v) for k, v in value.items()}
    return value


def parse(name: str, word: str) -> Any:
    """A setting's value from a typed word (`/set`, a flag)."""
    setting = BY_NAME.get(name)
    if setting is None:
        raise CommandError(f"unknown setting '{name}'", field=name, hint=f"known: {', '.join(BY_NAME)}")
    try:
        value = setting.parse(word)
    except ValueError:
        raise _fail(name, f"cannot be '{word}' ({setting.rule})") from None
    return coerce(name, value)


def check_overflow(value: Any, field: str = "context_overflow") -> str:
    """A context-overflow policy, or an error naming `field`."""
    if not isinstance(value, str) or value not in OVERFLOW_POLICIES:
        raise CommandError(f"{field} must be one of {', '.join(OVERFLOW_POLICIES)}, got {value!r}",
                           field=field)
    return value


@dataclass(frozen=True)
class SamplingParams:
    """One value per entry of :data:`SETTINGS`, in its order (tests/test_profiles.py holds the two
    together)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = 64
    typical_p: float = 1.0
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int | None = None
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    eos: str = EOS_STOP
    n_probs: int = DEFAULT_N_PROBS  # servers only: a local model's statistics use every token
    logit_bias: Mapping[str, float] = field(default_factory=dict)  # token text or "#id" -> bias

    def to_dict(self) -> dict[str, Any]:
        """Every setting, except the round-two samplers while they are all off (so the settings,
        and the digest, of a run from before them stay what they were)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if not self.extra_samplers:
            for name in EXTRA_SAMPLERS:
                del out[name]
        out["stop"] = list(self.stop)
        out["logit_bias"] = dict(self.logit_bias)
        return out

    @property
    def extra_samplers(self) -> bool:
        """Whether any of the round-two samplers is on (:data:`EXTRA_SAMPLERS`)."""
        return any(getattr(self, name) != getattr(_OFF, name) for name in EXTRA_SAMPLERS)

    def updated(self, **changes: Any) -> SamplingParams:
        params = replace(self, **changes)
        params.validate()
        return params

    def with_values(self, values: Mapping[str, Any]) -> SamplingParams:
        """These settings with `values` (YAML/JSON/keyword values) checked and applied."""
        return self.updated(**{name: coerce(name, value) for name, value in values.items()})

    def validate(self) -> None:
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if not setting.valid(value):
                raise _fail(setting.name, setting.rule)


_OFF = SamplingParams()
EXTRA_SAMPLERS = ("presence_penalty", "frequency_penalty", "dry_multiplier", "dry_base", "dry_allowed_length",
                  "dry_penalty_last_n", "typical_p", "xtc_probability", "xtc_threshold", "mirostat", "mirostat_tau",
                  "mirostat_eta")


def merged_sampling(defaults: SamplingParams, settings: Mapping[str, Any]) -> SamplingParams:
    """`settings` (keyword values) over `defaults`, checked through the settings schema."""
    values = dict(settings)
    if isinstance(values.get("stop"), str):
        values["stop"] = [values["stop"]]
    if isinstance(values.get("logit_bias"), Mapping):
        values["logit_bias"] = {**defaults.logit_bias, **values["logit_bias"]}
    if "seed" in values and values["seed"] is None:
        values["seed"] = -1  # None asks for a random seed, as -1 does
    known = list(BY_NAME)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise CommandError(f"unknown sampling setting(s): {', '.join(unknown)}", field=unknown[0],
                           hint=f"known: {', '.join(known)}")
    return defaults.with_values(values)
