"""Template lint: what is wrong with a chat template, for a person, a CI pipeline or code scanning.

  rules.py        the rule table: code, severity, one-line why, CWE (the one place to add a rule)
  findings.py     a finding: code, severity, message, probes, line and column
  static.py       the static pass (L101-L112), over folding.py / values.py (constant folding)
  runtime.py      the rendered checks (L001-L017) and :func:`lint` itself
  reply.py        a reply stored as the generator stores it: does it re-render as written (L016/L017)
  model_rules.py  rules on the model: confusable tokens, end-of-turn ids, tokenizer_config (L2xx)
  files.py        many files and GGUFs in one call, time budgets, suppressions (suppress.py)
  report.py       text, JSON and SARIF 2.1.0; the exit code
"""

from harness.lab.lint.runtime import (
    BASIC_PROBES,
    UNUSUAL_PROBES,
    Context,
    GuardedTemplate,
    OutOfTime,
    Tokenizer,
    capabilities,
    has_errors,
    lint,
)

__all__ = ["BASIC_PROBES", "UNUSUAL_PROBES", "Context", "GuardedTemplate", "OutOfTime", "Tokenizer",
           "capabilities", "has_errors", "lint"]
