"""harness: a raw text-completion chat harness for exploring chat templates."""

__version__ = "0.1.0"
