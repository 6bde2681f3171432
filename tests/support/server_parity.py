"""What "the same generation on a server" means in tests: the same tokens, and top-k statistics
within tolerance of the local model's (a server's are truncated)."""

from __future__ import annotations


def compare_to_server(local, remote) -> float:
    """Same tokens; the local top-k probabilities match the server's within tolerance.
    Returns the largest difference seen."""
    assert [t.id for t in remote.tokens] == [t.id for t in local.tokens]
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
                assert unnamed, (here.piece, token)
                served[token] = min(unnamed, key=lambda p: abs(p - prob))
            worst = max(worst, abs(served[token] - prob))
        assert there.stats.truncated and 0.0 <= there.stats.tail_mass <= 1.0
        assert abs(there.stats.surprisal_bits - here.stats.surprisal_bits) < 1e-3
        assert there.stats.entropy_bits <= here.stats.entropy_bits + 1e-3  # a lower bound
        assert there.role == here.role
    return worst
