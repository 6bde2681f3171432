"""Statistics over next-token distributions and over runs (numpy only; units in every name).

    entropy.py           entropy, surprisal, end-of-turn probability, top-k, varentropy; per-role summaries
    topk.py              the same from a server's top-k list (truncated: entropy a lower bound)
    model_comparison.py  a model against a reference on one text: KL, ranks, bits per byte
    bootstrap.py         percentile intervals resampling conversations, then turns
    calibration.py       token-level calibration (ECE, reliability bins)
    diversity.py         distinct-n and first-word entropy across samples
    quadrants.py         entropy × varentropy labels for reading the report
    refusal.py           a phrase-list refusal rate (to compare conditions, not a classifier)
"""
