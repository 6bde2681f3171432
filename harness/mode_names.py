"""The prompt modes' names (kept apart so the CLI can offer them without importing Jinja)."""

AS_IS = "as-is"
REPLY = "reply"
PREFILL = "prefill"
IMPERSONATE = "impersonate"
CONTINUE = "continue"
MODES = (AS_IS, REPLY, PREFILL, IMPERSONATE, CONTINUE)
