"""The exception tree of harness. Only the CLI and the REPL turn these into messages.

    HarnessError                 anything harness reports to a person (one line, says what to do)
    ├── TemplateError            a chat template failed to load, compile or render
    │   └── TemplateLimitError   a render was stopped for time or memory (the worker was killed)
    ├── ModelError               a model could not be found, assembled or loaded
    ├── ProfileError             a profile / settings file is malformed or has a bad field
    ├── MessagesError            a messages file is malformed
    ├── ExperimentError          an experiment file is malformed or names a bad field or value
    ├── ModeError                a prompt mode cannot be applied to this conversation
    ├── ContextOverflowError     the prompt does not fit in the model's context window
    ├── CommandError             a REPL command or CLI argument is malformed
    ├── StorageError             a log or saved conversation could not be written or read
    └── RemoteError              an inference server could not be reached or answered badly
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error harness reports to a person.

    `where` names the file (and line) the problem is in, when there is one; `hint` says
    what to do about it; `field` names the setting or key at fault, for callers that point at
    it (code reads `field` and the class, never the message). `str(err)` is the one-line
    message shown to the user.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class TemplateError(HarnessError):
    """A chat template failed to load, compile or render."""


class TemplateLimitError(TemplateError):
    """A render ran past the render worker's time or memory limit and the worker was stopped:
    rendering the same template again will likely cost as much."""


class ModelError(HarnessError):
    """A model could not be found, assembled, validated or loaded."""


class ProfileError(HarnessError):
    """A profile or settings file is malformed or names a bad field or value."""


class MessagesError(HarnessError):
    """A messages file is malformed."""


class ExperimentError(HarnessError):
    """An experiment file is malformed or names a bad field or value."""


class ModeError(HarnessError):
    """A prompt mode (prefill, impersonate, continue...) cannot be applied to this conversation."""


class ContextOverflowError(HarnessError):
    """The prompt (plus the tokens asked for) does not fit in the context window."""


class CommandError(HarnessError):
    """A REPL command or a CLI argument is malformed."""


class StorageError(HarnessError):
    """A log or saved conversation could not be written or read."""


class RemoteError(HarnessError):
    """An inference server (llama-server, an OpenAI-compatible server) could not be reached,
    answered with an HTTP error, or sent something that is not the documented format.
    `unreachable` is true when no connection could be made at all; `status` is the HTTP status
    of an error answer."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 unreachable: bool = False, status: int | None = None):
        super().__init__(message, where=where, hint=hint)
        self.unreachable = unreachable
        self.status = status
