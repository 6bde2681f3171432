"""Experiments: a YAML matrix expanded into cells, run into SQLite, summarised.

    spec.py         the schema and the cell matrix
    cells.py        what running cells means (execute_cells, through run_turn), the ledger, the outcome
    run.py          the local runner (one model load, batches of cells sharing a prompt)
    pool.py         the runner over servers          cell_queue.py  which cell a server runs next
    fixed_text.py   `score` cells                    choice.py      multiple-choice items
    past_eos.py     what a model does past its end of turn
    db.py           the database (runs, cells, turns, tokens)   db_guard.py  opening one read-only
    summary.py      per condition × scope × role, with bootstrap intervals   compare.py  A − B
    progress.py     the progress line
"""
