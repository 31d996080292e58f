"""Evaluation metrics of melody sets: novelty against a corpus, diversity, pitch and rhythm, intervals.

Pure numpy over (N, T) token arrays (no torch, no music21, no file I/O). Every per-melody metric is returned
as a *numerator* and a *denominator* per unit (a melody, or a set of melodies for the diversity metrics); the
estimate is ``sum(numerator) / sum(denominator)``. That one shape serves rates (notes not in key / notes),
per-melody figures (pitch range / 1 melody) and per-step means (log p summed / steps), and lets
:func:`bootstrap_intervals` resample whole melodies for all metrics with one matrix product.

Note n-grams are transposition-invariant: ``n`` consecutive notes as ``n − 1`` pitch intervals and ``n − 1``
inter-onset durations in steps (a rest counts toward the note before it), hashed to one uint64.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NO_EVENT, NUM_SPECIAL, Vocabulary

from .statistics import Ratio

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): a cheap, well-mixed hash
_SEED = np.uint64(0x2545F4914F6CDD1D)
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)


def _mix(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Fold ``values`` (non-negative ints) into running uint64 hash ``keys``."""
    with np.errstate(over="ignore"):
        keys = (keys ^ values.astype(np.uint64)) * _MULTIPLIER
        return keys ^ (keys >> np.uint64(29))


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.sort plus a mask: much faster than np.unique on uint64 keys)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys


def _group_sizes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key: the size of its group of equal keys, and whether it is its group's first occurrence."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if keys.size else order
    sizes = np.diff(np.concatenate([starts, [keys.size]]))
    size_of = np.empty(keys.size, dtype=np.int64)
    size_of[order] = np.repeat(sizes, sizes)
    first = np.zeros(keys.size, dtype=bool)
    first[order[starts]] = True
    return size_of, first


def _note_features(intervals: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """One non-negative integer per pair of consecutive notes: (interval, inter-onset steps) packed.

    Intervals lie within ±127 semitones (MIDI), so 10 bits hold them shifted by 512."""
    return (intervals.astype(np.int64) + 512) | (durations.astype(np.int64) << 10)


# ----------------------------------------------------------------------------------------------- notes
@dataclass(frozen=True)
class NoteOnsets:
    """The notes of N melodies as padded (N, K) arrays: the pitch token and onset step of each note."""

    tokens: np.ndarray
    """(N, K) int64 pitch token of each note, 0 past the last note."""
    steps: np.ndarray
    """(N, K) int64 step at which each note starts."""
    counts: np.ndarray
    """(N,) number of notes per melody."""

    @property
    def valid(self) -> np.ndarray:
        """(N, K) bool: the slot holds a note."""
        return np.arange(self.tokens.shape[1]) < self.counts[:, None]


def note_onsets(tokens: np.ndarray) -> NoteOnsets:
    """Notes (onsets) of (N, T) melodies, left-aligned in padded (N, K) arrays."""
    tokens = np.asarray(tokens, dtype=np.int64)
    is_onset = tokens >= NUM_SPECIAL
    counts = is_onset.sum(axis=1)
    width = int(counts.max(initial=0))
    rows, steps = np.nonzero(is_onset)
    slots = np.cumsum(is_onset, axis=1)[rows, steps] - 1
    onset_tokens = np.zeros((tokens.shape[0], width), dtype=np.int64)
    onset_steps = np.zeros((tokens.shape[0], width), dtype=np.int64)
    onset_tokens[rows, slots] = tokens[rows, steps]
    onset_steps[rows, slots] = steps
    return NoteOnsets(onset_tokens, onset_steps, counts)


def sounding_pitches(tokens: np.ndarray, vocab: Vocabulary = DEFAULT_VOCABULARY) -> np.ndarray:
    """(N, T) MIDI pitch sounding at each step, −1 where it is silent (holds extend the last event)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    steps = np.arange(tokens.shape[1])
    last_event = np.maximum.accumulate(np.where(tokens != NO_EVENT, steps, -1), axis=1)
    event = np.take_along_axis(tokens, np.maximum(last_event, 0), axis=1)
    sounding = (last_event >= 0) & (event >= NUM_SPECIAL)
    return np.where(sounding, event - NUM_SPECIAL + vocab.min_pitch, -1)


# ---------------------------------------------------------------------------------- corpus n-gram index
def note_ngram_keys(pitch_tokens: np.ndarray, onset_steps: np.ndarray) -> np.ndarray:
    """Keys of n-note phrases from (..., n) pitch tokens and onset steps, as in :class:`NoteNgramIndex`.

    For a reward that tracks the last n notes of each melody and asks ``index.contains(keys, n)``.
    """
    features = _note_features(np.diff(pitch_tokens, axis=-1), np.diff(onset_steps, axis=-1))
    keys = np.full(features.shape[:-1], _SEED, dtype=np.uint64)
    for column in range(features.shape[-1]):
        keys = _mix(keys, features[..., column])
    return keys


class NoteNgramIndex:
    """Every transposition-invariant note n-gram of a corpus, for "was this phrase copied?" lookups.

    A note n-gram is ``n`` consecutive notes of one melody, described by its ``n − 1`` pitch intervals and
    inter-onset durations, so a phrase copied in another key or starting on another beat still matches.
    Keys are hashed to uint64 and kept sorted per ``n``; a lookup is a vectorised binary search. Indices are
    built lazily, one ``n`` at a time, each from the previous one.
    """

    def __init__(self, melodies: Sequence[np.ndarray] | Iterable[np.ndarray]) -> None:
        melodies = [np.asarray(m, dtype=np.int64).ravel() for m in melodies]
        lengths = np.array([len(m) for m in melodies], dtype=np.int64)
        tokens = np.concatenate(melodies) if melodies else np.zeros(0, dtype=np.int64)
        self._init_from_flat(tokens, np.concatenate([[0], np.cumsum(lengths)]))

    @classmethod
    def from_flat(cls, tokens: np.ndarray, offsets: np.ndarray) -> NoteNgramIndex:
        """An index of melodies stored end to end, as in a corpus file.

        Melody ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``.
        """
        index = cls.__new__(cls)
        index._init_from_flat(np.asarray(tokens, dtype=np.int64), np.asarray(offsets, dtype=np.int64))
        return index

    def _init_from_flat(self, tokens: np.ndarray, offsets: np.ndarray) -> None:
        self.num_melodies = len(offsets) - 1
        melody_of_step = np.repeat(np.arange(self.num_melodies), np.diff(offsets))
        onsets = np.flatnonzero(tokens >= NUM_SPECIAL)
        self.num_notes = int(onsets.size)
        melody = melody_of_step[onsets]
        # Feature j joins note j and note j+1; it is usable only inside one melody.
        self._features = _note_features(np.diff(tokens[onsets]), np.diff(onsets))
        self._joined = melody[1:] == melody[:-1]
        self._sorted: dict[int, np.ndarray] = {}
        self._rolling_n = 1
        self._rolling = np.full(self.num_notes, _SEED, dtype=np.uint64)
        self._rolling_valid = np.ones(self.num_notes, dtype=bool)

    def keys(self, n: int) -> np.ndarray:
        """Sorted unique keys of every n-gram of the corpus (n ≥ 2)."""
        if n < 2:
            raise ValueError(f"a note n-gram needs at least 2 notes, got n = {n}")
        if n not in self._sorted:
            while self._rolling_n < n:
                m = self._rolling_n  # extend windows of m notes (m - 1 features) by one feature
                count = max(self.num_notes - m, 0)
                self._rolling = _mix(self._rolling[:count], self._features[m - 1 : m - 1 + count])
                self._rolling_valid = self._rolling_valid[:count] & self._joined[m - 1 : m - 1 + count]
                self._rolling_n = m + 1
                self._sorted[m + 1] = _sorted_unique(self._rolling[self._rolling_valid])
        return self._sorted[n]

    def contains(self, keys: np.ndarray, n: int) -> np.ndarray:
        """Bool array shaped like ``keys``: the n-gram occurs somewhere in the corpus."""
        table = self.keys(n)
        if table.size == 0:
            return np.zeros(np.shape(keys), dtype=bool)
        position = np.minimum(np.searchsorted(table, keys), table.size - 1)
        return table[position] == keys

    def copy_statistics(
        self, tokens: np.ndarray, ns: Sequence[int] = tuple(range(4, 17)), min_notes: int = 2
    ) -> CopyStatistics:
        """Which note n-grams of (N, T) melodies occur in the corpus, for each n in ``ns``.

        Also each melody's longest copied phrase of at least ``min_notes`` notes (shorter figures occur
        everywhere), in notes and in steps.
        """
        notes = note_onsets(tokens)
        count, width = notes.tokens.shape
        features = _note_features(np.diff(notes.tokens, axis=1), np.diff(notes.steps, axis=1))
        copied = {n: np.zeros(count, dtype=np.int64) for n in ns}
        windows = {n: np.maximum(notes.counts - n + 1, 0) for n in ns}
        longest_notes = np.zeros(count, dtype=np.int64)
        longest_steps = np.zeros(count, dtype=np.int64)
        rolling = np.full((count, width), _SEED, dtype=np.uint64)
        found_before = notes.valid
        for n in range(2, width + 1):
            rolling = _mix(rolling[:, :-1], features[:, n - 2 :])
            starts = width - n + 1
            # An n-gram can be copied only where both of its (n-1)-grams were: test just those windows.
            candidates = found_before[:, :starts] & found_before[:, 1 : starts + 1]
            candidates &= np.arange(starts) + n <= notes.counts[:, None]
            if n in copied or candidates.any():
                rows, cols = np.nonzero(candidates)
                hit = self.contains(rolling[rows, cols], n)
                found = np.zeros((count, starts), dtype=bool)
                found[rows[hit], cols[hit]] = True
            else:
                found = np.zeros((count, starts), dtype=bool)
            if n in copied:
                copied[n] = found.sum(axis=1)
            if not found.any():
                break  # nothing copied at n notes, so nothing longer either (counts stay 0)
            if n >= min_notes:
                rows, cols = np.nonzero(found)
                span = notes.steps[rows, cols + n - 1] - notes.steps[rows, cols]
                np.maximum.at(longest_steps, rows, span)
                longest_notes[rows] = n
            found_before = found
        return CopyStatistics(copied, windows, longest_notes, longest_steps)


@dataclass(frozen=True)
class CopyStatistics:
    """Per-melody results of :meth:`NoteNgramIndex.copy_statistics`."""

    copied: dict[int, np.ndarray]
    """n → (N,) number of the melody's note n-grams found in the corpus."""
    windows: dict[int, np.ndarray]
    """n → (N,) number of note n-grams in the melody."""
    longest_copied_notes: np.ndarray
    """(N,) most consecutive notes found together in the corpus (0 below ``min_notes``)."""
    longest_copied_steps: np.ndarray
    """(N,) steps from first to last onset of the longest-lasting copied phrase (0 if none)."""

    def copy_rate(self, n: int) -> float:
        total = self.windows[n].sum()
        return float(self.copied[n].sum() / total) if total else float("nan")


# ------------------------------------------------------------------------------- pitch and rhythm (MusPy)
def pitch_class_counts(tokens: np.ndarray, vocab: Vocabulary = DEFAULT_VOCABULARY) -> np.ndarray:
    """(N, 12) notes per pitch class (C = 0) of each melody; each note counts once, whatever its length."""
    tokens = np.asarray(tokens, dtype=np.int64)
    rows, steps = np.nonzero(tokens >= NUM_SPECIAL)
    pitch_class = (tokens[rows, steps] - NUM_SPECIAL + vocab.min_pitch) % 12
    flat = np.bincount(rows * 12 + pitch_class, minlength=tokens.shape[0] * 12)
    return flat.reshape(tokens.shape[0], 12)


def interval_counts(tokens: np.ndarray, max_interval: int = 12) -> np.ndarray:
    """(2·max + 1,) counts of signed intervals between consecutive notes, −max..+max (wider ones clipped)."""
    notes = note_onsets(tokens)
    valid = notes.valid[:, 1:]
    intervals = np.diff(notes.tokens, axis=1)[valid]
    return np.bincount(np.clip(intervals, -max_interval, max_interval) + max_interval, minlength=2 * max_interval + 1)


def pitch_statistics(tokens: np.ndarray, vocab: Vocabulary = DEFAULT_VOCABULARY) -> dict[str, Ratio]:
    """MusPy's pitch metrics per melody (notes counted once each); melodies without notes are left out.

    ``pitch_range`` (semitones, highest − lowest note), ``n_pitch_classes_used``, ``pitch_class_entropy``
    (bits, of the pitch-class histogram) and ``scale_consistency`` (largest share of notes inside one major or
    minor scale; natural minor shares its relative major's notes).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    counts = pitch_class_counts(tokens, vocab)
    notes = counts.sum(axis=1)
    has_notes = (notes > 0).astype(np.float64)
    pitched = tokens >= NUM_SPECIAL
    highest = np.where(pitched, tokens, -1).max(axis=1)
    lowest = np.where(pitched, tokens, np.iinfo(np.int64).max).min(axis=1)
    pitch_range = np.where(notes > 0, highest - lowest, 0).astype(np.float64)
    shares = counts / np.maximum(notes, 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(shares > 0, shares * np.log2(shares), 0.0).sum(axis=1)
    scales = np.zeros((12, 12))
    for tonic in range(12):
        scales[[(tonic + step) % 12 for step in _MAJOR_SCALE], tonic] = 1.0
    consistency = (shares @ scales).max(axis=1) * has_notes
    return {
        "pitch_range": (pitch_range, has_notes),
        "n_pitch_classes_used": ((counts > 0).sum(axis=1).astype(np.float64), has_notes),
        "pitch_class_entropy": (entropy * has_notes, has_notes),
        "scale_consistency": (consistency, has_notes),
    }


def rhythm_statistics(tokens: np.ndarray, vocab: Vocabulary = DEFAULT_VOCABULARY) -> dict[str, Ratio]:
    """Rest, hold and empty-beat rates per melody, as they sound (not as they are spelled).

    ``rest_rate``: share of steps where nothing sounds. ``hold_rate``: share of steps that sustain a note
    (holds after a rest extend the silence instead). ``empty_beat_rate`` (MusPy): share of beats (quarter
    notes) in which no note sounds at all.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    count, length = tokens.shape
    sounding = sounding_pitches(tokens, vocab) >= 0
    steps = np.full(count, float(length))
    beat = vocab.steps_per_quarter
    beats = -(-length // beat)
    padded = np.zeros((count, beats * beat), dtype=bool)
    padded[:, :length] = sounding
    empty_beats = ~padded.reshape(count, beats, beat).any(axis=2)
    return {
        "rest_rate": ((~sounding).sum(axis=1).astype(np.float64), steps),
        "hold_rate": ((sounding & (tokens == NO_EVENT)).sum(axis=1).astype(np.float64), steps),
        "empty_beat_rate": (empty_beats.sum(axis=1).astype(np.float64), np.full(count, float(beats))),
    }


# ------------------------------------------------------------------------------------------------ diversity
def diversity_by_set(tokens: np.ndarray, set_size: int, ns: Sequence[int] = (2, 4)) -> dict[str, np.ndarray]:
    """Diversity within consecutive sets of ``set_size`` melodies: one value per set (leftovers are dropped).

    Judged per set of a fixed size, so sample sets of different sizes compare fairly (distinct-n and
    duplicates depend on how many melodies are pooled). Pass canonical tokens (one spelling per sound).

    - ``distinct_{n}gram``: distinct token n-grams / all token n-grams of the set (near 0: the set repeats
      itself);
    - ``duplicate_rate``: share of melodies with an identical copy elsewhere in the set;
    - ``mean_pairwise_similarity``: share of steps at which two different melodies of the set have the same
      token, averaged over all pairs (1: all identical).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    length = tokens.shape[1]
    if set_size < 2:
        raise ValueError(f"diversity needs sets of at least 2 melodies, got set_size = {set_size}")
    num_sets = tokens.shape[0] // set_size
    tokens = tokens[: num_sets * set_size]
    set_of_melody = np.repeat(np.arange(num_sets), set_size)
    results: dict[str, np.ndarray] = {}
    vocab_size = int(tokens.max(initial=0)) + 1
    for n in ns:
        if n > length:
            raise ValueError(f"distinct-{n} needs melodies of at least {n} steps, got {length}")
        windows = length - n + 1
        results[f"distinct_{n}gram"] = _distinct_ngrams_per_set(tokens, n, set_size, vocab_size) / (set_size * windows)
    melody_keys = _mix(np.full(tokens.shape[0], _SEED, dtype=np.uint64), set_of_melody)
    for step in range(length):
        melody_keys = _mix(melody_keys, tokens[:, step])
    duplicated = _group_sizes(melody_keys)[0] > 1
    results["duplicate_rate"] = np.bincount(set_of_melody, weights=duplicated, minlength=num_sets) / set_size
    cells = (set_of_melody[:, None] * length + np.arange(length)) * vocab_size + tokens
    per_token = np.bincount(cells.ravel(), minlength=num_sets * length * vocab_size).astype(np.float64)
    agreeing_pairs = (per_token * (per_token - 1)).reshape(num_sets, -1).sum(axis=1)
    results["mean_pairwise_similarity"] = agreeing_pairs / (length * set_size * (set_size - 1))
    return results


def distinct_ngram_counts(tokens: np.ndarray, n: int, set_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per melody, (numerator, denominator) of the distinct-n share of the sets of ``set_size`` it falls in.

    Each of a melody's n-gram windows counts 1/m, m = how often that n-gram occurs in its set, so a set's
    numerators sum to its number of distinct n-grams and Σ num / Σ den over the sets is the mean distinct-n
    share that :func:`diversity_by_set` reports — a set figure split into per-melody counts, so it can be a
    target that shapes the reward (a melody is paid for the n-grams its set has not heard often).

    The share falls as sets grow, so every set has exactly ``set_size`` melodies: consecutive sets, the last
    one wrapping around to the first melodies, whose numerator is then the mean over their two sets. Fewer
    melodies than ``set_size`` form one set. Pass canonical tokens.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    count, length = tokens.shape
    windows = length - n + 1
    if windows < 1:
        raise ValueError(f"distinct-{n} needs melodies of at least {n} steps, got {length}")
    if count == 0:
        return np.zeros(0), np.zeros(0)
    size = min(set_size, count)
    num_sets = -(-count // size)
    members = (np.arange(num_sets)[:, None] * size + np.arange(size)) % count  # (sets, size) melody indices
    keys = np.full((num_sets, size, windows), _SEED, dtype=np.uint64)
    for offset in range(n):
        keys = _mix(keys, tokens[members, offset : offset + windows])
    keys = _mix(keys, np.broadcast_to(np.arange(num_sets)[:, None, None], keys.shape))
    size_of, _ = _group_sizes(keys.ravel())
    per_appearance = (1.0 / size_of).reshape(num_sets * size, windows).sum(axis=1)
    appearances = np.bincount(members.ravel(), minlength=count)
    numerator = np.bincount(members.ravel(), weights=per_appearance, minlength=count) / appearances
    return numerator, np.full(count, float(windows))


def _distinct_ngrams_per_set(tokens: np.ndarray, n: int, set_size: int, vocab_size: int) -> np.ndarray:
    """(sets,) number of distinct token n-grams in each consecutive set of ``set_size`` melodies."""
    count, length = tokens.shape
    windows = length - n + 1
    num_sets = count // set_size
    if num_sets * float(vocab_size) ** n < 2.0**62:  # exact: (set, n-gram) packed into one integer
        keys = np.repeat(np.arange(num_sets, dtype=np.int64), set_size)[:, None]
        for offset in range(n):
            keys = keys * vocab_size + tokens[:, offset : offset + windows]
        distinct = _sorted_unique(keys.ravel()) // vocab_size**n
        return np.bincount(distinct, minlength=num_sets)
    set_of_window = np.repeat(np.arange(num_sets), set_size * windows)
    keys = np.full((count, windows), _SEED, dtype=np.uint64)
    for offset in range(n):
        keys = _mix(keys, tokens[:, offset : offset + windows])
    keys = _mix(keys.ravel(), set_of_window)
    _, first = _group_sizes(keys)
    return np.bincount(set_of_window[first], minlength=num_sets)


# ------------------------------------------------------------------------------------------------ bootstrap
def ratio(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """``sum(numerator) / sum(denominator)``, NaN when the denominator sums to 0."""
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total else float("nan")


def bootstrap_intervals(
    numerators: np.ndarray,
    denominators: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    max_units: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap intervals of ``sum(num[:, m]) / sum(den[:, m])`` for every metric column ``m``.

    ``numerators`` and ``denominators`` are (units, metrics); the units (melodies, or sets of melodies) are
    resampled with replacement, the same draws for every metric. Returns (low, high), each (metrics,); NaN for
    a metric whose denominator is 0 in every resample.

    Beyond ``max_units`` units, the units are first dealt at random into ``max_units`` groups and the groups
    are resampled: for independent melodies the group sums have the same variance structure, and 100k
    melodies cost what 2,000 do.
    """
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    units, metrics = numerators.shape
    if units == 0:
        return np.full(metrics, np.nan), np.full(metrics, np.nan)
    rng = np.random.default_rng(seed)
    columns = np.concatenate([numerators, denominators], axis=1)
    if units > max_units:
        dealt = columns[rng.permutation(units)]
        columns = np.add.reduceat(dealt, np.linspace(0, units, max_units, endpoint=False).astype(np.int64), axis=0)
        units = max_units
    estimates = np.empty((resamples, metrics))
    chunk = max(1, min(resamples, 4_000_000 // units))  # resamples drawn at once, bounded in memory
    for begin in range(0, resamples, chunk):
        size = min(chunk, resamples - begin)
        draws = rng.integers(0, units, size=(size, units))
        draws += np.arange(size)[:, None] * units
        weights = np.bincount(draws.ravel(), minlength=size * units).reshape(size, units).astype(np.float64)
        sums = weights @ columns
        with np.errstate(divide="ignore", invalid="ignore"):
            estimates[begin : begin + size] = sums[:, :metrics] / sums[:, metrics:]
    estimates[~np.isfinite(estimates)] = np.nan
    tail = 100 * (1 - confidence) / 2
    with np.errstate(all="ignore"):
        defined = ~np.isnan(estimates).all(axis=0)
        low = np.full(metrics, np.nan)
        high = np.full(metrics, np.nan)
        if defined.any():
            low[defined] = np.nanpercentile(estimates[:, defined], tail, axis=0)
            high[defined] = np.nanpercentile(estimates[:, defined], 100 - tail, axis=0)
    return low, high
