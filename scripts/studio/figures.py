"""The figures the page shows beside a melody: Table 1's statistics and log p under the prior."""

from __future__ import annotations

import math

import numpy as np
from notetune.pretrained.encoding import tokens_to_notes
from notetune.pretrained.model import NoteRNN, PriorProduct
from notetune.pretrained.vocab import Vocabulary
from notetune.rewards.keys import Key
from notetune.rewards.statistics import STATISTICS, table1_statistics

from .generation import melody_log_prior

SET_STATISTICS = ("distinct_melodies",)
"""Table 1 rows that describe a set of melodies, not one: left out of a single melody's figures."""


def _finite(value: float) -> float | None:
    """JSON has no NaN: a figure without a denominator (no leaps, a constant melody) is null."""
    return float(value) if math.isfinite(value) else None


def melody_figures(
    tokens: np.ndarray,
    key: Key,
    vocab: Vocabulary,
    prior: NoteRNN | PriorProduct,
    allowed: np.ndarray | None = None,
    primer: np.ndarray | None = None,
) -> dict:
    """Table 1 statistics of one melody in ``key`` (fractions; null where undefined), its notes, and log p.

    ``log_prior`` is the melody's total log-probability under ``prior`` (already in ``key``), renormalised over
    ``allowed`` when given; ``log_prior_per_token`` is the same divided by the length.
    """
    tokens = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
    statistics = table1_statistics(tokens, key, vocab)
    log_prior = float(melody_log_prior(prior, tokens, allowed, primer)[0])
    notes = tokens_to_notes(tokens[0], vocab)
    return {
        "table1": {name: _finite(statistics[name]) for name in STATISTICS if name not in SET_STATISTICS},
        "log_prior": _finite(log_prior),
        "log_prior_per_token": _finite(log_prior / tokens.shape[1]),
        "notes": len(notes),
        "range": [min(n.pitch for n in notes), max(n.pitch for n in notes)] if notes else None,
        "key": str(key),
        "length": int(tokens.shape[1]),
    }
