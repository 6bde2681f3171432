"""The interactive REPL (the only package that imports prompt_toolkit)."""
