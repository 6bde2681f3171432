"""The reference renderer of the parity tests: jinja2 set up the way Hugging Face transformers
sets it up for ``apply_chat_template(tokenize=False)`` (tests/test_parity.py says how)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(format):  # transformers names the parameter `format`
    return datetime.now().strftime(format)


class _AssistantTrackerInactive(jinja2.ext.Extension):
    """transformers' ``{% generation %}`` extension as it behaves without an assistant mask: a
    CallBlock whose support method returns ``caller()``."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [],
                                      body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def _reference_environment(*extensions) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[*extensions, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


PLAIN = _reference_environment()
TRACKING = _reference_environment(_AssistantTrackerInactive)
GENERATION_TAG = re.compile(r"\{\%-?\s*generation\s*-?\%\}")  # transformers' own check
