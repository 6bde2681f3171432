"""Model files: reading GGUF headers, the known models, and opening a backend on one.

    gguf.py          the GGUF metadata reader (never more than the file could hold)
    gguf_checks.py   structural checks llama.cpp would assert on, run first
    probe.py         a first load in a sacrificial child (a crashing file is an error, not a dead REPL)
    registry.py      the known models, where their files are, open_backend
    table.py         the rows of `harness models` and `harness templates`
"""
