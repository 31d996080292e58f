"""Corrected variants of RL Tuner's rules, for the default ``notetune`` set.

Under tuning the faithful rules get gamed: a long note costs −100 per held step (rule 3 counts holds as
repeats), raw token ids are correlated (rule 4), a looping motif is paid every step (rule 6) and so is every
hold after a C or G (rule 7). These variants keep the detectors and close those loopholes.
"""

from __future__ import annotations

import numpy as np
from notetune.pretrained.vocab import NOTE_OFF, NUM_SPECIAL

from .core import StatefulReward, StepBatch
from .registry import reward
from .rl_tuner import (
    AUTOCORRELATION_PENALTY,
    AUTOCORRELATION_THRESHOLD,
    LAGS,
    REPETITION_PENALTY,
    PreferredIntervals,
    RepeatedMotif,
    tonic_tables,
)

MAX_RESTRIKES = 4
"""A pitch may be struck again this many times in a row (holds between allowed, a rest breaks the run)."""


@reward("tonic_start")
def tonic_start(batch: StepBatch) -> np.ndarray:
    """+3 for starting on the tonic (the first half of RL Tuner rule 2)."""
    start, _ = tonic_tables(batch.key, batch.vocab, batch.length)
    return start[batch.t, batch.action]


@reward("tonic_end")
def tonic_end(batch: StepBatch) -> np.ndarray:
    """+3 per step for ending on a held tonic: tonic at length−4, a hold, then holds or rests (rule 2)."""
    _, end = tonic_tables(batch.key, batch.vocab, batch.length)
    return end[batch.t, batch.action]


@reward("repeated_onsets")
class RepeatedOnsets(StatefulReward):
    """−100 when a pitch is struck again more than 4 times in a row; holds extend a note, rests break runs."""

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.last_pitch = np.full(batch_size, -1)
        self.strikes = np.zeros(batch_size, dtype=np.int64)
        """Onsets of ``last_pitch`` in a row, with only holds between (0 after a rest)."""

    def detect(self, batch: StepBatch) -> np.ndarray:
        """(B,) bool: the action re-strikes the sounding pitch for the 5th time or more."""
        action = batch.action
        is_pitch = action >= NUM_SPECIAL
        restrike = is_pitch & (action == self.last_pitch)
        excessive = restrike & (self.strikes > MAX_RESTRIKES)
        self.strikes = np.where(
            restrike, self.strikes + 1, np.where(is_pitch, 1, np.where(action == NOTE_OFF, 0, self.strikes))
        )
        self.last_pitch = np.where(is_pitch, action, np.where(action == NOTE_OFF, -1, self.last_pitch))
        return excessive

    def step(self, batch: StepBatch) -> np.ndarray:
        return np.where(self.detect(batch), REPETITION_PENALTY, 0.0)


def onset_pitch_autocorrelation(compositions: np.ndarray) -> np.ndarray:
    """(3, B) ρ at lags 1..3 of each composition's sequence of onset pitches (holds and rests dropped).

    Same formula as RL Tuner's rule 4; ρ = 0 when fewer than lag + 1 onsets or all onsets are one pitch.
    """
    is_onset = compositions >= NUM_SPECIAL
    count = is_onset.sum(axis=1)
    order = np.argsort(~is_onset, axis=1, kind="stable")  # onsets first, in time order
    pitches = np.take_along_axis(compositions, order, axis=1).astype(np.float64)
    valid = np.arange(compositions.shape[1]) < count[:, None]
    centred = np.where(valid, count[:, None] * pitches - (pitches * valid).sum(axis=1, keepdims=True), 0.0)
    spread = (centred * centred).sum(axis=1)
    rho = np.zeros((len(LAGS), compositions.shape[0]))
    for row, lag in enumerate(LAGS):
        covariance = (centred[:, lag:] * centred[:, :-lag]).sum(axis=1)
        rho[row] = np.divide(covariance, spread, out=np.zeros_like(spread), where=spread > 0)
    return rho


@reward("onset_autocorrelation")
def onset_autocorrelation(batch: StepBatch) -> np.ndarray:
    """At the last step: −3·|ρ| for each lag 1..3 where the onset pitches correlate with |ρ| > 0.15."""
    if not batch.is_last_step:
        return batch.zeros()
    magnitude = np.abs(onset_pitch_autocorrelation(batch.tokens))
    return -AUTOCORRELATION_PENALTY * np.where(magnitude > AUTOCORRELATION_THRESHOLD, magnitude, 0.0).sum(axis=0)


@reward("repeated_motif_once")
class RepeatedMotifOnce(RepeatedMotif):
    """Rule 6's bonus, paid at most once per composition (the first time a motif repeats)."""

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.paid = np.zeros(batch_size, dtype=bool)

    def step(self, batch: StepBatch) -> np.ndarray:
        repeated, distinct = self.detect(batch)
        first = repeated & ~self.paid
        self.paid |= repeated
        return self.bonus(first, distinct)


@reward("preferred_intervals_first_hold")
class PreferredIntervalsFirstHold(PreferredIntervals):
    """Rule 7 with the hold bonus paid only on the first hold after a note's onset."""

    first_hold_only = True


NOTETUNE_WEIGHTS = {
    "key": 3.0,
    "tonic_start": 12.0,
    "tonic_end": 1.0,
    "repeated_onsets": 1.0,
    "onset_autocorrelation": 1.0,
    "motif": 0.25,
    "repeated_motif_once": 1.0,
    "preferred_intervals_first_hold": 1.0,
    "leap_resolution": 6.0,
    "unique_extremes": 1.0,
}
"""The ``notetune`` set: what kept tuning from collapsing in the prototypes (issue 4)."""
