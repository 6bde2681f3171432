"""Entropy × varentropy quadrants: a label for the shape of one next-token distribution.

Entropy (bits) says how spread the distribution is; varentropy (bits², the variance of the
surprisal over it) says whether that spread is even (a few similar options, or many) or lumpy
(one strong option beside a long tail). The cuts are conventions for annotating a report, not
findings: ENTROPY_CUT_BITS = 2 (about four equally likely options), VARENTROPY_CUT_BITS2 = 4.
"""

from __future__ import annotations

ENTROPY_CUT_BITS = 2.0
VARENTROPY_CUT_BITS2 = 4.0

QUADRANTS = {
    (False, False): "confident",  # low H, low V: one clear choice
    (False, True): "confident, long tail",  # low H, high V: a favourite beside rare outliers
    (True, False): "evenly torn",  # high H, low V: several options about equally likely
    (True, True): "uncertain, lumpy",  # high H, high V: spread and uneven; the model is lost
}


def quadrant(entropy_bits: float | None, varentropy_bits2: float | None) -> str | None:
    """The quadrant label of a token's distribution; None without statistics."""
    if entropy_bits is None or varentropy_bits2 is None:
        return None
    return QUADRANTS[(entropy_bits >= ENTROPY_CUT_BITS, varentropy_bits2 >= VARENTROPY_CUT_BITS2)]
