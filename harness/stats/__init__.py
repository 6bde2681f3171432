"""Statistics over next-token distributions and over runs (numpy only; units in every name).

    entropy.py           entropy, surprisal, end-of-turn probability, top-k, varentropy; per-role summaries
    topk.py              the same from a server's top-k list (truncated: entropy a lower bound)
    model_comparison.py  a model against a reference on one text: KL, ranks, bits per byte
    intervals.py         Student-t on conversation means, paired / Welch differences, power
    student_t.py         the t and normal distributions (numpy only)
    bootstrap.py         percentile intervals resampling conversations, then turns (the baseline)
    calibration.py       token-level calibration (ECE, Brier, the ECE of a calibrated model)
    diversity.py         distinct-n, expectation-adjusted distinct-n, first-word entropy
    quadrants.py         entropy × varentropy labels for reading the report
    refusal.py           a phrase-list refusal rate (to compare conditions, not a classifier)
"""
