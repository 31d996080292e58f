"""RL Tuner's nine music-theory rules (Jaques et al. 2017), reproduced exactly and made key-aware.

Each rule is vectorised over the batch and works incrementally: a stateful rule updates a few (B,) arrays per
step instead of re-reading the composition. Every rule separates a *detector* (what happened musically, reused
by :mod:`notetune.rewards.statistics` for the paper's Table 1) from its *reward* (the paper's magnitudes).
In C major every table equals RL Tuner's: key set {0, 1, 2, 4, 6, ...}, tonic 14, C/G {2, 14, 26, 9, 21, 33}.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from notetune.pretrained.vocab import NO_EVENT, NOTE_OFF, NUM_SPECIAL, Vocabulary

from .core import RewardSetup, StatefulReward, StepBatch
from .keys import Key, pitch_class_mask
from .registry import reward

BAR = 8
"""Tokens per "bar" in the motif rules (RL Tuner's bar_length)."""
LEAP = 7
"""Semitones from which a melodic step is a leap (a fifth or more)."""
STEPS_BETWEEN_LEAPS = 6
"""A leap back resolves a leap only if more than this many steps passed since the last leap."""
LAGS = (1, 2, 3)
AUTOCORRELATION_THRESHOLD = 0.15

KEY_PENALTY = -1.0
TONIC_BONUS = 3.0
REPETITION_PENALTY = -100.0
AUTOCORRELATION_PENALTY = 3.0
MOTIF_BONUS, MOTIF_BONUS_PER_EXTRA_PITCH = 3.0, 0.3
REPEATED_MOTIF_BONUS, REPEATED_MOTIF_BONUS_PER_EXTRA_PITCH = 4.0, 1.0
INTERVAL_SCALE = 5.0
LEAP_RESOLVED_BONUS, LEAP_DOUBLED_PENALTY = 5.0, -5.0
UNIQUE_EXTREME_BONUS = 3.0

RESOLVED, DOUBLED = 1, -1
"""Outcomes of the leap detector."""


# --- 1. key -------------------------------------------------------------------------------------------------
def not_in_key(batch: StepBatch) -> np.ndarray:
    """(B,) bool: the action is a pitch outside the key (rests and holds are in key)."""
    return ~batch.key.in_key_mask(batch.vocab)[batch.action]


@reward("key")
def key(batch: StepBatch) -> np.ndarray:
    """−1 for a note outside the key (RL Tuner rule 1)."""
    return np.where(not_in_key(batch), KEY_PENALTY, 0.0)


# --- 2. tonic -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def tonic_tables(key: Key, vocab: Vocabulary, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) tables of shape (length, V): the tonic bonus for action ``v`` at step ``t``.

    Start: the tonic at t = 0. End: the tonic on the last bar's first 16th (t = length − 4), a hold at
    t = length − 3, a hold or rest at the last two steps — the piece ends on a held tonic.
    """
    start, end = np.zeros((length, vocab.size)), np.zeros((length, vocab.size))
    tonic, final_bar = key.tonic_token(vocab), length - 4
    start[0, tonic] = TONIC_BONUS
    end[final_bar, tonic] = TONIC_BONUS
    end[final_bar + 1, NO_EVENT] = TONIC_BONUS
    end[final_bar + 2 :, [NO_EVENT, NOTE_OFF]] = TONIC_BONUS
    for table in (start, end):
        table.flags.writeable = False
    return start, end


@reward("tonic")
def tonic(batch: StepBatch) -> np.ndarray:
    """+3 for starting on the tonic and for ending on a held tonic (RL Tuner rule 2)."""
    start, end = tonic_tables(batch.key, batch.vocab, batch.length)
    return start[batch.t, batch.action] + end[batch.t, batch.action]


# --- 3. excessive repetition --------------------------------------------------------------------------------
@reward("excessive_repetition")
class ExcessiveRepetition(StatefulReward):
    """−100 when the action repeats itself too often (RL Tuner rule 3, faithful: held notes count).

    Walking back over the tokens that equal the action, rests or holds: more than one earlier rest before a
    rest, more than 4 repeats with no hold or rest between, or more than 6 with one, is excessive.
    """

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.last_pitch = np.full(batch_size, -1)
        self.strikes = np.zeros(batch_size, dtype=np.int64)
        """Times the last pitch occurs since the pitch before it."""
        self.run_has_hold = np.zeros(batch_size, dtype=bool)
        self.run_has_rest = np.zeros(batch_size, dtype=bool)
        self.trailing_holds = np.zeros(batch_size, dtype=np.int64)
        """Holds since the last pitch (or since the start)."""
        self.trailing_rests = np.zeros(batch_size, dtype=np.int64)

    def detect(self, batch: StepBatch) -> np.ndarray:
        """(B,) bool: the action is excessively repeated; then remember it."""
        action = batch.action
        is_rest, is_hold = action == NOTE_OFF, action == NO_EVENT
        is_pitch = action >= NUM_SPECIAL
        repeats_pitch = is_pitch & (action == self.last_pitch)
        broken = self.run_has_hold | self.run_has_rest
        excessive = (
            (is_rest & (self.trailing_rests > 1))
            | (is_hold & np.where(self.trailing_rests > 0, self.trailing_holds > 6, self.trailing_holds > 4))
            | (repeats_pitch & np.where(broken, self.strikes > 6, self.strikes > 4))
        )
        new_pitch = is_pitch & ~repeats_pitch
        self.run_has_hold = np.where(new_pitch, self.trailing_holds > 0, self.run_has_hold | is_hold)
        self.run_has_rest = np.where(new_pitch, self.trailing_rests > 0, self.run_has_rest | is_rest)
        self.strikes = np.where(new_pitch, 1, self.strikes + repeats_pitch)
        self.trailing_holds = np.where(is_pitch, 0, self.trailing_holds + is_hold)
        self.trailing_rests = np.where(is_pitch, 0, self.trailing_rests + is_rest)
        self.last_pitch = np.where(is_pitch, action, self.last_pitch)
        return excessive

    def step(self, batch: StepBatch) -> np.ndarray:
        return np.where(self.detect(batch), REPETITION_PENALTY, 0.0)


# --- 4. autocorrelation -------------------------------------------------------------------------------------
@reward("autocorrelation")
class Autocorrelation(StatefulReward):
    """−3·|ρ| for each lag 1, 2, 3 where the composition so far correlates with itself, |ρ| > 0.15 (rule 4).

    ρ is computed on the raw token numbers, as RL Tuner did. Running sums make each step O(1); the
    comparison with the threshold is exact (integer arithmetic), so ties cannot flip with rounding.
    """

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.sum = np.zeros(batch_size)
        self.sum_squares = np.zeros(batch_size)
        self.lagged_products = np.zeros((len(LAGS), batch_size))

    def coefficients(self, batch: StepBatch) -> tuple[np.ndarray, np.ndarray]:
        """Update with the action; return ρ (3, B) for lags 1..3 (0 when undefined) and whether |ρ| > 0.15."""
        tokens, t = batch.tokens, batch.t
        x = tokens[:, t].astype(np.float64)
        self.sum += x
        self.sum_squares += x * x
        n = t + 1
        # With y = n·x − Σx (integers): ρ_lag = Σ y_i·y_{i+lag} / Σ y_i², i.e. RL Tuner's
        # Σ(x_i − m)(x_{i+lag} − m) / n / var scaled by n² — exact in float64 for these magnitudes.
        spread = n * n * self.sum_squares - n * self.sum * self.sum
        rho = np.zeros((len(LAGS), tokens.shape[0]))
        exceeds = np.zeros((len(LAGS), tokens.shape[0]), dtype=bool)
        for row, lag in enumerate(LAGS):
            if t < lag:
                continue
            self.lagged_products[row] += x * tokens[:, t - lag]
            head = tokens[:, :lag].sum(axis=1)
            tail = tokens[:, n - lag :].sum(axis=1)
            covariance = (
                n * n * self.lagged_products[row]
                - n * self.sum * (2 * self.sum - head - tail)
                + (n - lag) * self.sum * self.sum
            )
            defined = spread > 0
            rho[row] = np.divide(covariance, spread, out=np.zeros_like(spread), where=defined)
            exceeds[row] = defined & (20 * np.abs(covariance) > 3 * spread)
        return rho, exceeds

    def step(self, batch: StepBatch) -> np.ndarray:
        rho, exceeds = self.coefficients(batch)
        return -AUTOCORRELATION_PENALTY * np.where(exceeds, np.abs(rho), 0.0).sum(axis=0)


# --- 5. motif -----------------------------------------------------------------------------------------------
def distinct_pitches_in_last_bar(batch: StepBatch) -> np.ndarray:
    """(B,) int: distinct pitches among the last 8 tokens (0 before a full bar exists)."""
    if batch.t < BAR - 1:
        return np.zeros(batch.batch_size, dtype=np.int64)
    window = np.sort(batch.tokens[:, batch.t - BAR + 1 : batch.t + 1], axis=1)
    is_pitch = window >= NUM_SPECIAL
    changes = is_pitch[:, 1:] & (window[:, 1:] != window[:, :-1])
    return is_pitch[:, 0] + changes.sum(axis=1)


@reward("motif")
def motif(batch: StepBatch) -> np.ndarray:
    """+3 (+0.3 per pitch beyond 3) when the last 8 tokens hold at least 3 distinct pitches (rule 5)."""
    distinct = distinct_pitches_in_last_bar(batch)
    bonus = MOTIF_BONUS + MOTIF_BONUS_PER_EXTRA_PITCH * np.maximum(distinct - 3, 0)
    return np.where(distinct >= 3, bonus, 0.0)


# --- 6. repeated motif --------------------------------------------------------------------------------------
@reward("repeated_motif")
class RepeatedMotif(StatefulReward):
    """+4 (+1 per pitch beyond 3) when the last-bar motif already occurred earlier, not overlapping (rule 6).

    Each 8-token window is packed into one uint64 (8 bits per token), so "occurred before" is one
    comparison per earlier window.
    """

    def __init__(self, setup: RewardSetup | None = None) -> None:
        super().__init__(setup)
        if self.setup.vocab.size > 256:
            raise ValueError(f"repeated_motif packs tokens in 8 bits; vocabulary size {self.setup.vocab.size} > 256")

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.window_codes = np.zeros((batch_size, self.setup.length), dtype=np.uint64)

    def detect(self, batch: StepBatch) -> tuple[np.ndarray, np.ndarray]:
        """(B,) bool "the last bar repeats an earlier motif" and (B,) distinct pitches in the last bar."""
        t = batch.t
        previous = self.window_codes[:, t - 1] if t > 0 else np.zeros(batch.batch_size, dtype=np.uint64)
        code = (previous << np.uint64(8)) | batch.action.astype(np.uint64)  # high bits fall off: last 8 tokens
        self.window_codes[:, t] = code
        distinct = distinct_pitches_in_last_bar(batch)
        if t < 2 * BAR - 1:
            return np.zeros(batch.batch_size, dtype=bool), distinct
        # Earlier windows must end before the current window's first token: ends BAR-1 .. t-BAR.
        earlier = self.window_codes[:, BAR - 1 : t - BAR + 1]
        repeated = (distinct >= 3) & (earlier == code[:, None]).any(axis=1)
        return repeated, distinct

    def bonus(self, repeated: np.ndarray, distinct: np.ndarray) -> np.ndarray:
        extra = REPEATED_MOTIF_BONUS_PER_EXTRA_PITCH * np.maximum(distinct - 3, 0)
        return np.where(repeated, REPEATED_MOTIF_BONUS + extra, 0.0)

    def step(self, batch: StepBatch) -> np.ndarray:
        return self.bonus(*self.detect(batch))


# --- 7. preferred intervals ---------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def interval_table(key: Key, vocab: Vocabulary) -> np.ndarray:
    """(V+1, V) reward of action ``v`` after previous pitch token ``p`` (row V: no previous pitch), ×5.

    RL Tuner's "C or G" become the key's tonic and dominant, "C or E" its tonic and mediant.
    """
    size = vocab.size
    table = np.zeros((size + 1, size))
    tonic_or_dominant = pitch_class_mask(vocab, key.tonic_and_dominant)
    tonic_or_mediant = pitch_class_mask(vocab, key.tonic_and_mediant)
    tokens = np.arange(size)
    for previous in range(NUM_SPECIAL, size):
        row = table[previous]
        stable = tonic_or_dominant[previous]
        row[NO_EVENT] = 0.3 if stable else 0.075
        row[NOTE_OFF] = 0.15 if stable else 0.05
        interval = np.abs(tokens[NUM_SPECIAL:] - previous)
        pitched = row[NUM_SPECIAL:]
        for semitones, value in ((2, 0.08), (4, 0.09), (5, 0.07), (7, 0.02), (9, 0.05), (11, -0.3)):
            pitched[interval == semitones] = value
        pitched[interval > 12] = -1.0
        if stable:
            pitched[interval == 7] = 0.1
        if tonic_or_mediant[previous]:
            pitched[interval == 4] = 0.15
    table *= INTERVAL_SCALE
    table.flags.writeable = False
    return table


@reward("preferred_intervals")
class PreferredIntervals(StatefulReward):
    """Small rewards for steps, thirds and held or resting stable notes; −1.5 for sevenths, −5 past an octave.

    RL Tuner rule 7 (×5): the interval from the previous pitch (holds and rests skipped) to the action.
    """

    first_hold_only = False
    """If True, the hold bonus is paid only on the hold right after a note's onset (the notetune variant)."""

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.last_pitch = np.full(batch_size, -1)

    def step(self, batch: StepBatch) -> np.ndarray:
        action = batch.action
        row = np.where(self.last_pitch >= 0, self.last_pitch, batch.vocab.size)
        values = interval_table(batch.key, batch.vocab)[row, action]
        if self.first_hold_only and batch.t > 0:
            later_hold = (action == NO_EVENT) & (batch.tokens[:, batch.t - 1] < NUM_SPECIAL)
            values = np.where(later_hold, 0.0, values)
        self.last_pitch = np.where(action >= NUM_SPECIAL, action, self.last_pitch)
        return values


# --- 8. leap resolution -------------------------------------------------------------------------------------
@reward("leap_resolution")
class LeapResolution(StatefulReward):
    """+5 for resolving a leap (a fifth or more), −5 for leaping twice the same way (RL Tuner rule 8).

    A leap is resolved by a later step back to (or past) the note it left, or by a leap the other way once
    more than 6 steps have passed since the last leap. Holds and rests only advance the step counter.
    """

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.last_pitch = np.full(batch_size, -1)
        self.direction = np.zeros(batch_size, dtype=np.int64)
        """+1 after an unresolved upward leap, −1 after a downward one, 0 with no open leap."""
        self.leapt_from = np.zeros(batch_size, dtype=np.int64)
        self.steps_since_leap = np.zeros(batch_size, dtype=np.int64)

    def detect(self, batch: StepBatch) -> np.ndarray:
        """(B,) int: RESOLVED (+1), DOUBLED (−1) or 0; then remember the action."""
        action = batch.action
        outcome = np.zeros(batch.batch_size, dtype=np.int64)
        is_pitch = action >= NUM_SPECIAL
        if batch.t == 0:  # RL Tuner looks at nothing (not even the counter) on the first note
            self.last_pitch = np.where(is_pitch, action, self.last_pitch)
            return outcome
        leap = is_pitch & (self.last_pitch >= 0) & (np.abs(action - self.last_pitch) >= LEAP)
        leap_direction = np.where(action > self.last_pitch, 1, -1)
        open_leap = self.direction != 0
        opens = leap & ~open_leap
        turns_back = leap & open_leap & (self.direction != leap_direction)
        doubled = leap & open_leap & (self.direction == leap_direction)
        returned = (
            is_pitch
            & ~leap
            & (
                ((self.direction == 1) & (action <= self.leapt_from))
                | ((self.direction == -1) & (action >= self.leapt_from))
            )
        )
        outcome[(turns_back & (self.steps_since_leap > STEPS_BETWEEN_LEAPS)) | returned] = RESOLVED
        outcome[doubled] = DOUBLED
        self.leapt_from = np.where(opens, self.last_pitch, self.leapt_from)
        self.direction = np.where(opens, leap_direction, np.where(turns_back | returned, 0, self.direction))
        self.steps_since_leap = np.where(leap, 0, self.steps_since_leap + 1)
        self.last_pitch = np.where(is_pitch, action, self.last_pitch)
        return outcome

    def step(self, batch: StepBatch) -> np.ndarray:
        outcome = self.detect(batch)
        return np.where(
            outcome == RESOLVED, LEAP_RESOLVED_BONUS, np.where(outcome == DOUBLED, LEAP_DOUBLED_PENALTY, 0.0)
        )


# --- 9. unique extremes -------------------------------------------------------------------------------------
def unique_extremes(compositions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) bools for whole compositions: the highest token occurs once; the lowest pitch occurs once.

    As in RL Tuner the maximum is over all tokens (a piece of rests and one hold has a unique maximum, 1),
    the minimum over pitches only.
    """
    highest = compositions.max(axis=1)
    unique_high = (compositions == highest[:, None]).sum(axis=1) == 1
    no_pitch = np.iinfo(np.int64).max
    lowest = np.where(compositions >= NUM_SPECIAL, compositions, no_pitch).min(axis=1)
    unique_low = (lowest != no_pitch) & ((compositions == lowest[:, None]).sum(axis=1) == 1)
    return unique_high, unique_low


@reward("unique_extremes")
def unique_extreme_notes(batch: StepBatch) -> np.ndarray:
    """At the last step: +3 if the highest note occurs once, +3 if the lowest does (RL Tuner rule 9)."""
    if not batch.is_last_step:
        return batch.zeros()
    unique_high, unique_low = unique_extremes(batch.tokens)
    return UNIQUE_EXTREME_BONUS * (unique_high.astype(np.float64) + unique_low)


RL_TUNER_RULES = (
    "key",
    "tonic",
    "excessive_repetition",
    "autocorrelation",
    "motif",
    "repeated_motif",
    "preferred_intervals",
    "leap_resolution",
    "unique_extremes",
)
"""The nine rules, in RL Tuner's order."""
