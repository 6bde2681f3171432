"""What "the same generation on a server" means in tests: the same tokens (or a report of where
they first part), and top-k statistics within tolerance of the local model's — a server's are
truncated, so its entropy is a pair of bounds that must hold the local full-vocabulary entropy."""

from __future__ import annotations

import math

BOUND_TOLERANCE = 1e-3  # bits: the server's top-k probabilities and their tail are float32


def divergence(local, served) -> str | None:
    """Where two generations' token streams first part, said with both tokens and probabilities
    (None: the same tokens)."""
    for i, (a, b) in enumerate(zip(local.tokens, served.tokens, strict=False)):
        if a.id != b.id:
            def p(t):
                return 2.0 ** -t.stats.surprisal_bits if t.stats else math.nan
            return (f"token {i}: local {a.id} {a.piece!r} (p {p(a):.4f}), server {b.id} {b.piece!r} "
                    f"(p {p(b):.4f}) after {''.join(t.piece for t in local.tokens[:i])!r}")
    if len(local.tokens) != len(served.tokens):
        return f"lengths {len(local.tokens)} vs {len(served.tokens)}"
    return None


def compare_to_server(local, remote, *, by_id: bool = True) -> float:
    """Same tokens; the local top-k probabilities match the server's within tolerance; the
    server's entropy bounds hold the local entropy and its point estimate lies inside them.
    Returns the largest probability difference seen. `by_id` false: the server lists tokens by
    text (OpenAI-compatible), so a token whose text is not its own (a broken UTF-8 piece such as
    SmolLM2's 10813, b"\\xf0\\x9f") may be missing."""
    where = divergence(local, remote)
    assert where is None, f"the server's tokens diverge from the local loop's at {where}"
    assert remote.text == local.text and remote.stop_reason == local.stop_reason
    worst = 0.0
    for here, there in zip(local.tokens, remote.tokens, strict=True):
        served = dict(zip(there.stats.top_ids, there.stats.top_probs, strict=True))
        for token, prob in zip(here.stats.top_ids, here.stats.top_probs, strict=True):
            if prob < 1e-3:
                continue  # ties far down the list may be ordered differently
            if token not in served:  # named by a text that is not one token (control tokens
                # are "" in llama-cpp-python): the same probability under a negative id
                unnamed = [p for i, p in served.items() if i < 0]
                if not unnamed and not by_id:
                    continue
                assert unnamed, (here.piece, token)
                served[token] = min(unnamed, key=lambda p: abs(p - prob))
            worst = max(worst, abs(served[token] - prob))
        assert there.stats.truncated and 0.0 <= there.stats.tail_mass <= 1.0
        assert abs(there.stats.surprisal_bits - here.stats.surprisal_bits) < 1e-3
        lo, hi = there.stats.entropy_bounds_bits
        truth = here.stats.entropy_bits
        assert lo - BOUND_TOLERANCE <= truth <= hi + BOUND_TOLERANCE, (here.piece, truth, lo, hi)
        assert lo <= there.stats.entropy_bits <= hi
        assert there.role == here.role
    return worst
