"""The statistics of the paper's Table 1, computed by the same detectors the rewards use.

Per-token statistics are fractions of all n × length tokens; per-composition ones fractions of the n
compositions; ``leaps_resolved`` is resolved / (resolved + doubled); autocorrelations are averaged over the
compositions whose tokens are not all equal (RL Tuner's nanmean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NO_EVENT, NOTE_OFF, Vocabulary, canonicalize

from .core import RewardSetup, StepBatch
from .keys import Key
from .notetune_rules import RepeatedOnsets
from .rl_tuner import (
    DOUBLED,
    RESOLVED,
    Autocorrelation,
    ExcessiveRepetition,
    LeapResolution,
    RepeatedMotif,
    not_in_key,
    unique_extremes,
)

STATISTICS = (
    "excessively_repeated",
    "not_in_key",
    "starts_with_tonic",
    "leaps_resolved",
    "unique_max",
    "unique_min",
    "in_motif",
    "in_repeated_motif",
    "autocorrelation_lag1",
    "autocorrelation_lag2",
    "autocorrelation_lag3",
    "hold_share",
    "rest_share",
    "distinct_melodies",
    "repeated_onsets",
)
"""Keys of :func:`table1_statistics`, in table order."""

Ratio = tuple[np.ndarray, np.ndarray]
"""(numerator, denominator) per composition; the statistic is ``numerator.sum() / denominator.sum()``."""

PAPER_TABLE1: dict[str, dict[str, float]] = {
    "note_rnn": {
        "excessively_repeated": 0.633,
        "autocorrelation_lag1": -0.16,
        "autocorrelation_lag2": 0.14,
        "autocorrelation_lag3": -0.13,
        "not_in_key": 0.001,
        "starts_with_tonic": 0.009,
        "leaps_resolved": 0.772,
        "unique_max": 0.647,
        "unique_min": 0.494,
        "in_motif": 0.059,
        "in_repeated_motif": 0.00007,
    },
    "q": {
        "excessively_repeated": 0.0,
        "autocorrelation_lag1": -0.11,
        "autocorrelation_lag2": 0.03,
        "autocorrelation_lag3": 0.03,
        "not_in_key": 0.01,
        "starts_with_tonic": 0.288,
        "leaps_resolved": 0.911,
        "unique_max": 0.564,
        "unique_min": 0.519,
        "in_motif": 0.757,
        "in_repeated_motif": 0.0011,
    },
    "psi": {
        "excessively_repeated": 0.0002,
        "autocorrelation_lag1": -0.10,
        "autocorrelation_lag2": -0.01,
        "autocorrelation_lag3": 0.01,
        "not_in_key": 0.006,
        "starts_with_tonic": 0.287,
        "leaps_resolved": 0.90,
        "unique_max": 0.594,
        "unique_min": 0.583,
        "in_motif": 0.738,
        "in_repeated_motif": 0.0009,
    },
    "g": {
        "excessively_repeated": 0.0003,
        "autocorrelation_lag1": 0.55,
        "autocorrelation_lag2": 0.31,
        "autocorrelation_lag3": 0.17,
        "not_in_key": 0.287,
        "starts_with_tonic": 0.0,
        "leaps_resolved": 0.522,
        "unique_max": 0.371,
        "unique_min": 0.565,
        "in_motif": 0.693,
        "in_repeated_motif": 0.0001,
    },
}
"""Table 1 of Jaques et al. (2017) as fractions, under the keys of :func:`table1_statistics`."""

PAPER_COLUMN_TITLES = {"note_rnn": "paper Note RNN", "q": "paper Q", "psi": "paper Ψ", "g": "paper G"}


def table1_counts(
    compositions: np.ndarray,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    paper_token_order: bool = False,
) -> dict[str, Ratio]:
    """Per-composition numerators and denominators of :func:`table1_statistics`.

    Same detectors and conventions (``paper_token_order`` swaps tokens 0 and 1 before scoring); pooled, each
    pair gives exactly the value ``table1_statistics`` reports, and per composition it lets the statistics be
    bootstrapped and tested. ``distinct_melodies`` is a property of the whole set and is left out.
    """
    tokens = np.asarray(compositions)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 8:
        raise ValueError(f"compositions must be (n >= 1, length >= 8) tokens; got shape {tokens.shape}")
    tokens = tokens.astype(np.int64)
    if tokens.min() < 0 or tokens.max() >= vocab.size:
        raise ValueError(f"tokens must be classes 0..{vocab.size - 1}; got {tokens.min()}..{tokens.max()}")
    key = Key.parse(key)
    count, length = tokens.shape
    scored = (
        np.where(tokens == NOTE_OFF, NO_EVENT, np.where(tokens == NO_EVENT, NOTE_OFF, tokens))
        if paper_token_order
        else tokens
    )
    setup = RewardSetup(key=key, vocab=vocab, length=length)
    repetition, onsets = ExcessiveRepetition(setup), RepeatedOnsets(setup)
    autocorrelation, motifs, leaps = Autocorrelation(setup), RepeatedMotif(setup), LeapResolution(setup)
    for detector in (repetition, onsets, autocorrelation, motifs, leaps):
        detector.reset(count)
    names = ("excessive", "restruck", "not_in_key", "in_motif", "in_repeated", "resolved", "doubled")
    totals = {name: np.zeros(count) for name in names}
    rho = np.zeros((3, count))
    for t in range(length):
        batch = StepBatch(scored[:, : t + 1], t, key, vocab, length)
        totals["excessive"] += repetition.detect(batch)
        totals["restruck"] += onsets.detect(batch)
        totals["not_in_key"] += not_in_key(batch)
        repeated, distinct = motifs.detect(batch)
        totals["in_motif"] += distinct >= 3
        totals["in_repeated"] += repeated
        outcome = leaps.detect(batch)
        totals["resolved"] += outcome == RESOLVED
        totals["doubled"] += outcome == DOUBLED
        rho, _ = autocorrelation.coefficients(batch)
    steps = np.full(count, float(length))
    ones = np.ones(count)
    unique_high, unique_low = unique_extremes(scored)
    varied = (scored != scored[:, :1]).any(axis=1).astype(np.float64)
    counts: dict[str, Ratio] = {
        "excessively_repeated": (totals["excessive"], steps),
        "not_in_key": (totals["not_in_key"], steps),
        "starts_with_tonic": ((scored[:, 0] == key.tonic_token(vocab)).astype(np.float64), ones),
        "leaps_resolved": (totals["resolved"], totals["resolved"] + totals["doubled"]),
        "unique_max": (unique_high.astype(np.float64), ones),
        "unique_min": (unique_low.astype(np.float64), ones),
        "in_motif": (totals["in_motif"], steps),
        "in_repeated_motif": (totals["in_repeated"], steps),
    }
    for lag in (1, 2, 3):
        counts[f"autocorrelation_lag{lag}"] = (rho[lag - 1] * varied, varied)
    counts["hold_share"] = ((tokens == NO_EVENT).sum(axis=1).astype(np.float64), steps)
    counts["rest_share"] = ((tokens == NOTE_OFF).sum(axis=1).astype(np.float64), steps)
    counts["repeated_onsets"] = (totals["restruck"], steps)
    return counts


def table1_statistics(
    compositions: np.ndarray,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    paper_token_order: bool = False,
) -> dict[str, float]:
    """Table 1's statistics (plus hold/rest shares, distinct melodies, repeated onsets) of (n, length) tokens.

    ``distinct_melodies`` is the share of distinct sounding melodies: two spellings of one silence (see
    :func:`~notetune.pretrained.vocab.canonicalize`) count once.

    ``paper_token_order=True`` swaps tokens 0 and 1 before applying the rules: the published Note RNN emitted
    hold as 0 and rest as 1, so this is how its compositions were scored (and why it shows 63.3% excessive
    repetition). Hold and rest shares always use notetune's meaning (0 = rest, 1 = hold).
    """
    counts = table1_counts(compositions, key, vocab, paper_token_order)
    stats = {name: _pooled(*pair) for name, pair in counts.items()}
    tokens = np.asarray(compositions)
    # Melodies that sound alike are one melody, however their silences are spelled (as diversity counts them).
    stats["distinct_melodies"] = distinct_melody_share(tokens)
    return {name: float(stats[name]) for name in STATISTICS}


def _pooled(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """``sum(numerator) / sum(denominator)``; NaN with no denominator (no leaps, or only constant melodies)."""
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total else float("nan")


def distinct_melody_share(tokens: np.ndarray) -> float:
    """Share of distinct sounding melodies among (N, T) compositions (two spellings of one sound count once)."""
    return _distinct_rows(canonicalize(tokens)) / len(tokens)


def _distinct_rows(tokens: np.ndarray) -> int:
    rows = np.ascontiguousarray(tokens.astype(np.uint8 if tokens.max() < 256 else np.int64))
    as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1])))
    return int(np.unique(as_bytes).size)


def format_table1(
    rows: Mapping[str, Mapping[str, float]],
    paper_columns: Sequence[str] = ("note_rnn", "q"),
    statistics: Sequence[str] = STATISTICS,
) -> str:
    """A text table: a column per stats row (e.g. ``{"samples": ..., "corpus": ...}``) beside the paper."""
    columns = [(title, values) for title, values in rows.items()]
    columns += [(PAPER_COLUMN_TITLES.get(name, f"paper {name}"), PAPER_TABLE1[name]) for name in paper_columns]
    header = ["statistic"] + [title for title, _ in columns]
    lines = [[name] + [_format_value(name, values.get(name)) for _, values in columns] for name in statistics]
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule] + [render(line) for line in lines])


def _format_value(name: str, value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "–" if value is None else "n/a"
    if name.startswith("autocorrelation"):
        return f"{value:+.3f}"
    if 0 < abs(value) < 0.001:
        return f"{100 * value:.3f}%"
    return f"{100 * value:.1f}%"
