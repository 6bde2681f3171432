"""The command line: argv -> calls into the API and the library; errors -> messages and exit codes.

    main.py             the parser and main() (the one place errors become messages)
    commands.py         render, generate, score, models, templates, import, chat (generate and score
                        through harness.api)
    lab.py              lint, diff, fit, render --show/--tokens
    experiments.py      run, summary, report, score --text
    score_reference.py  score --reference
    doctor.py           doctor: the installed llama.cpp build against what this CPU grants
    docs.py             the generated parts of docs/ (python -m harness.cli.docs)
"""
