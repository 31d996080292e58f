"""Novelty rewards: push tuned models away from copying the corpus and from collapsing onto one melody.

Note n-grams here are transposition-invariant: the last ``n`` onsets as ``n − 1`` pitch intervals and
``n − 1`` inter-onset durations (in steps; a rest counts toward the note before it), hashed to one uint64 by
:func:`~notetune.rewards.metrics.note_ngram_keys` — the keys of the copy-rate metrics' corpus index, so the
``corpus_copy`` reward and ``copy_rate_<n>gram`` judge a phrase alike.
"""

from __future__ import annotations

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.vocab import NUM_SPECIAL

from .core import RewardSetup, StatefulReward, StepBatch
from .metrics import NoteNgramIndex, note_ngram_keys
from .registry import reward


class NoteNgramTracker:
    """The last ``n`` onsets of every melody in a batch, updated one step at a time."""

    def __init__(self, n: int, batch_size: int) -> None:
        if n < 2:
            raise ValueError(f"a note n-gram needs at least 2 notes, got n = {n}")
        self.n = n
        self.pitches = np.zeros((batch_size, n), dtype=np.int64)
        self.times = np.zeros((batch_size, n), dtype=np.int64)
        self.onsets = np.zeros(batch_size, dtype=np.int64)

    def update(self, batch: StepBatch) -> tuple[np.ndarray, np.ndarray]:
        """Add the action; return (B,) bool "an n-gram ends on this onset" and the (B,) keys (valid there)."""
        action = batch.action
        is_onset = action >= NUM_SPECIAL
        if is_onset.any():
            rows = np.flatnonzero(is_onset)
            self.pitches[rows] = np.roll(self.pitches[rows], -1, axis=1)
            self.times[rows] = np.roll(self.times[rows], -1, axis=1)
            self.pitches[rows, -1] = action[rows]
            self.times[rows, -1] = batch.t
            self.onsets += is_onset
        complete = is_onset & (self.onsets >= self.n)
        return complete, note_ngram_keys(self.pitches, self.times)


@reward("corpus_copy")
class CorpusCopy(StatefulReward):
    """−1 on each note completing an n-note phrase (intervals + durations, default 8) found in the corpus."""

    penalty = -1.0

    def __init__(self, setup: RewardSetup | None = None, n: int = 8) -> None:
        super().__init__(setup)
        if self.setup.corpus is None:
            raise UserInputError(
                "corpus_copy needs the training melodies: give a corpus (--corpus), or build the reward set "
                "with RewardSet.from_spec(..., corpus=melodies) (a list of 1-D token arrays)"
            )
        self.n = n
        self.index = NoteNgramIndex(self.setup.corpus)
        """The corpus's hashed n-grams (the copy-rate metrics' index); a lookup is a vectorised binary search."""
        self.index.keys(n)  # built now, not on the first step

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.tracker = NoteNgramTracker(self.n, batch_size)

    def detect(self, batch: StepBatch) -> np.ndarray:
        """(B,) bool: the onset just played completes an n-gram that occurs in the corpus."""
        complete, keys = self.tracker.update(batch)
        return complete & self.index.contains(keys, self.n)

    def step(self, batch: StepBatch) -> np.ndarray:
        return np.where(self.detect(batch), self.penalty, 0.0)


@reward("count_novelty")
class CountNovelty(StatefulReward):
    """β/√N on each note completing an n-gram (default 4 notes) the policy has produced N times in training.

    Counts live in a hashed table (2^20 slots, rare collisions only lower a bonus) and persist across
    episodes for the life of the reward set; ``reset`` does not clear them.
    """

    def __init__(self, setup: RewardSetup | None = None, n: int = 4, beta: float = 1.0, table_bits: int = 20) -> None:
        super().__init__(setup)
        self.n, self.beta = n, beta
        self.counts = np.zeros(1 << table_bits, dtype=np.int64)
        self._mask = np.uint64((1 << table_bits) - 1)

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.tracker = NoteNgramTracker(self.n, batch_size)

    def step(self, batch: StepBatch) -> np.ndarray:
        complete, keys = self.tracker.update(batch)
        slots = (keys & self._mask).astype(np.int64)
        np.add.at(self.counts, slots[complete], 1)
        count = np.maximum(self.counts[slots], 1)
        return np.where(complete, self.beta / np.sqrt(count), 0.0)


@reward("batch_diversity")
class BatchDiversity:
    """At the last step: −1 for a melody that another melody of its group (nearly) duplicates.

    Near means at most ``max_differences`` of the tokens differ (default 2 of 32). Melodies are judged within
    groups of at most ``group_size`` (default 256, the training batch): a batch of B is cut into
    ⌈B / group_size⌉ consecutive groups of as equal a size as possible, so no melody is dropped and the expected
    penalty per melody is about the same for a batch of 2,048 (screening) as of 10,000 (confirmation) — judged
    against the whole batch, a melody of a larger batch would find more near twins by chance alone. Catches a
    collapse; a mode rarer than one melody per group stays invisible to it.
    """

    name = "batch_diversity"
    penalty = -1.0

    def __init__(self, max_differences: int = 2, group_size: int = 256) -> None:
        if group_size < 2:
            raise ValueError(f"batch_diversity needs groups of at least 2 melodies, got group_size = {group_size}")
        self.max_differences, self.group_size = max_differences, group_size

    def near_duplicates(self, compositions: np.ndarray) -> np.ndarray:
        """(B,) bool: another composition of the same group differs from this one in at most ``max_differences``
        tokens."""
        count = compositions.shape[0]
        groups = -(-count // self.group_size)
        compact = compositions.astype(np.uint8 if compositions.max(initial=0) < 256 else np.int64)
        found = [self._near_duplicates_within(group) for group in np.array_split(compact, groups)]
        return np.concatenate(found) if found else np.zeros(0, dtype=bool)

    def _near_duplicates_within(self, group: np.ndarray) -> np.ndarray:
        if self.max_differences == 0:
            _, inverse, counts = np.unique(group, axis=0, return_inverse=True, return_counts=True)
            return counts[inverse.ravel()] > 1
        differences = (group[:, None, :] != group[None, :, :]).sum(axis=2)
        np.fill_diagonal(differences, 1 << 30)  # a melody is not its own twin
        return (differences <= self.max_differences).any(axis=1)

    def __call__(self, batch: StepBatch) -> np.ndarray:
        if not batch.is_last_step:
            return batch.zeros()
        return np.where(self.near_duplicates(batch.tokens), self.penalty, 0.0)


@reward("surprise_band")
class SurpriseBand:
    """+1 when the prior's surprisal of the action, −log p(action), lies in [low, high] nats.

    Too predictable (below ``low``) and too random (above ``high``) both score 0. Needs the prior's
    log-probabilities, which the environment passes to ``RewardSet.step``.
    """

    name = "surprise_band"

    def __init__(self, low: float = 0.5, high: float = 3.0) -> None:
        if not 0 <= low < high:
            raise ValueError(f"the surprise band needs 0 <= low < high, got [{low}, {high}]")
        self.low, self.high = low, high

    def __call__(self, batch: StepBatch) -> np.ndarray:
        if batch.action_log_prior is None:
            raise ValueError(
                "surprise_band needs the prior's log-probabilities: call RewardSet.step(tokens, t, "
                "prior_log_probs=...) (evaluate and compare: give a --prior, not 'none')"
            )
        surprisal = -batch.action_log_prior
        return ((surprisal >= self.low) & (surprisal <= self.high)).astype(np.float64)
