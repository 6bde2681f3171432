"""From a conversation to a generated turn: settings, workbenches, token loops, records.

    settings.py          the sampling settings, declared once (flags, profiles, /set, experiments, the API)
    profiles.py          YAML profiles, checked against a strict schema
    sampling.py          the sampler, in llama-cpp-python's order
    workbench.py         a model with a template: plan, fit the context, generate, score (BaseWorkbench, Workbench)
    remote_workbench.py  the same over a server
    open.py              the one place workbenches are built and template names chosen
    request.py           run_turn: the one function that runs a turn (CLI, API, REPL, experiment cells)
    results.py           what the Python API hands back (a turn, a score), serialisable after close
    evaluation.py        prompt encoding with roles; evaluation with per-token statistics and KV reuse
    loop.py              the local token loop          batch.py     several candidates decoded together
    sequence.py          one sequence's part of a loop remote_loop.py  the loop over a server
    turn.py              one generated turn as it grows: stops, streaming, roles, StopReason
    stop_text.py         stop strings and the end of the turn in text   roles.py  generated tokens' roles
    records.py           token records and the JSON contracts of generate/score
    reference_model.py   score --reference: the same text through a second model
    text_score.py        score --text: raw text, no template
"""
