"""Experiments: a YAML matrix expanded into cells, run into SQLite, summarised.

    spec.py         the experiment and its cell matrix    schema.py  the file's fields, checked
    conversations.py conversation entries (files, globs, end_with, before)
    cells.py        what running cells means (execute_cells, through run_turn), the ledger, the outcome
    run.py          the local runner (one model load, batches of cells sharing a prompt)
    pool.py         the runner over servers          cell_queue.py  which cell a server runs next
    fixed_text.py   `score` cells                    choice.py      multiple-choice items
    past_eos.py     what a model does past its end of turn
    db.py           the database (runs, cells, turns, tokens)   db_guard.py  opening one read-only
    summary.py      per condition × scope × role, Student-t over conversations   compare.py  A − B
    summary_table.py the summary as a text or Markdown table
    claims.py       claims with verdicts (experiments/claims.yaml -> RESULTS.md rows)
    progress.py     the progress line
"""
