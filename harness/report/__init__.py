"""The HTML report: a run or a chat log in, one self-contained page out.

    sources.py       turn views and summary rows from a database or a log
    html.py          the page                    assets.py       its stylesheet and scripts
    charts.py        entropy over position, means per condition
    study_charts.py  reliability diagrams, temperature sweeps
"""
