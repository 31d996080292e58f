"""The evaluation metrics of notetune.rewards.metrics on melodies whose answers are known by construction."""

import math

import numpy as np
import pytest
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NO_EVENT, NOTE_OFF
from notetune.rewards import table1_statistics
from notetune.rewards.metrics import (
    NoteNgramIndex,
    _distinct_ngrams_per_set,
    bootstrap_intervals,
    diversity_by_set,
    interval_counts,
    note_ngram_keys,
    note_onsets,
    pitch_class_counts,
    pitch_statistics,
    ratio,
    rhythm_statistics,
)
from notetune.rewards.statistics import table1_counts

C4 = DEFAULT_VOCABULARY.pitch_to_token(60)
HOLD, REST = NO_EVENT, NOTE_OFF


def melody_from_notes(pitches, durations, length=None):
    """Tokens of consecutive notes (MIDI pitches; None = a rest) each lasting ``durations[i]`` steps."""
    tokens = []
    for pitch, duration in zip(pitches, durations, strict=True):
        tokens.append(REST if pitch is None else DEFAULT_VOCABULARY.pitch_to_token(pitch))
        tokens.extend([HOLD] * (duration - 1))
    tokens.extend([HOLD] * ((length or len(tokens)) - len(tokens)))
    return np.array(tokens[: length or len(tokens)], dtype=np.int64)


def random_walks(count, length, seed):
    """In-range melodies: random steps of −4..+4 semitones, each note 1-3 steps long."""
    rng = np.random.default_rng(seed)
    melodies = []
    for _ in range(count):
        pitches, durations, pitch = [], [], 66
        while sum(durations) < length:
            pitch = int(np.clip(pitch + rng.integers(-4, 5), 50, 80))
            pitches.append(pitch)
            durations.append(int(rng.integers(1, 4)))
        melodies.append(melody_from_notes(pitches, durations, length))
    return melodies


@pytest.fixture(scope="module")
def corpus_melodies():
    return random_walks(40, 96, seed=1)


@pytest.fixture(scope="module")
def index(corpus_melodies):
    return NoteNgramIndex(corpus_melodies)


# --------------------------------------------------------------------------------------------- novelty
def test_melodies_cut_from_the_corpus_are_fully_copied_and_flagged(corpus_melodies, index):
    windows = np.stack([m[start : start + 32] for m in corpus_melodies[:10] for start in (0, 17, 40)])
    copies = index.copy_statistics(windows, ns=range(4, 17))
    for n in range(4, 12):
        assert copies.copy_rate(n) == 1.0
    assert (copies.longest_copied_steps >= 16).all(), "every 32-step excerpt holds a copied bar"


def test_copies_are_found_in_any_key(corpus_melodies, index):
    phrase = corpus_melodies[3][:32]
    transposed = np.where(phrase >= 2, phrase + 3, phrase)  # a minor third up
    assert index.copy_statistics(transposed[None], ns=(8,)).copy_rate(8) == 1.0


def test_unrelated_melodies_are_not_copies(index):
    # Whole-tone leaps of 6 semitones never occur in the corpus (its steps are at most 4 semitones).
    unrelated = melody_from_notes([52, 58, 64, 70, 64, 58, 52, 58] * 2, [2] * 16)[None]
    copies = index.copy_statistics(unrelated, ns=(4, 8))
    assert copies.copy_rate(4) == 0.0 and copies.copy_rate(8) == 0.0
    assert copies.longest_copied_steps[0] == 0 and copies.longest_copied_notes[0] == 0


def test_longest_copied_span_measures_the_copied_phrase_in_steps():
    corpus = [melody_from_notes([60, 62, 64, 65, 67, 69], [4, 2, 2, 4, 2, 2])]
    index = NoteNgramIndex(corpus)
    # The first four notes copy the corpus (onsets 0, 4, 6, 8: 8 steps), then the melody leaps away.
    sample = melody_from_notes([60, 62, 64, 65, 77, 52, 76], [4, 2, 2, 4, 4, 4, 4])[None]
    copies = index.copy_statistics(sample, ns=(4, 5))
    assert copies.longest_copied_notes[0] == 4
    assert copies.longest_copied_steps[0] == 8
    assert copies.copied[4][0] == 1 and copies.windows[4][0] == 4
    assert copies.copied[5][0] == 0
    assert index.copy_statistics(sample, ns=(4,), min_notes=5).longest_copied_steps[0] == 0  # too short


def test_phrases_never_join_two_corpus_melodies():
    corpus = [melody_from_notes([60, 62], [2, 2]), melody_from_notes([64, 65], [2, 2])]
    index = NoteNgramIndex(corpus)
    joined = melody_from_notes([60, 62, 64, 65], [2, 2, 2, 2])[None]
    assert index.copy_statistics(joined, ns=(3,)).copy_rate(3) == 0.0
    assert index.contains(index.keys(2), 2).all()


def test_phrase_keys_for_rewards_match_the_index(corpus_melodies, index):
    notes = note_onsets(corpus_melodies[5][None])
    pitches, steps = notes.tokens[0, 3:11], notes.steps[0, 3:11]  # notes 3..10 of a corpus melody
    keys = note_ngram_keys(np.stack([pitches, pitches + 5]), np.stack([steps, steps + 1]))
    assert index.contains(keys, 8).tolist() == [True, True]  # the phrase, and the same phrase moved
    assert not index.contains(note_ngram_keys(pitches * 2, steps), 8)


def test_index_from_a_flat_corpus_matches_the_list_version(corpus_melodies, index):
    offsets = np.concatenate([[0], np.cumsum([len(m) for m in corpus_melodies])])
    flat = NoteNgramIndex.from_flat(np.concatenate(corpus_melodies), offsets)
    for n in (2, 5, 9):
        np.testing.assert_array_equal(flat.keys(n), index.keys(n))


def test_note_onsets_are_left_aligned_per_melody():
    tokens = np.array([[C4, HOLD, REST, C4 + 2], [HOLD, HOLD, C4 + 4, HOLD]])
    notes = note_onsets(tokens)
    assert notes.counts.tolist() == [2, 1]
    assert notes.tokens[0].tolist() == [C4, C4 + 2] and notes.steps[0].tolist() == [0, 3]
    assert notes.tokens[1, 0] == C4 + 4 and notes.valid.tolist() == [[True, True], [True, False]]


# ------------------------------------------------------------------------------------------- diversity
def test_identical_melodies_have_no_diversity():
    melody = random_walks(1, 32, seed=5)[0]
    diversity = diversity_by_set(np.tile(melody, (200, 1)), set_size=100)
    assert diversity["distinct_4gram"].max() < 0.02  # 29 distinct 4-grams among 2,900
    assert (diversity["duplicate_rate"] == 1.0).all()
    assert (diversity["mean_pairwise_similarity"] == 1.0).all()


def test_different_melodies_are_diverse():
    tokens = np.stack(random_walks(200, 32, seed=6))
    diversity = diversity_by_set(tokens, set_size=100)
    assert diversity["duplicate_rate"].tolist() == [0.0, 0.0]
    assert diversity["distinct_4gram"].min() > 0.3  # holds repeat, so not 1; identical melodies give 0.01
    assert diversity["mean_pairwise_similarity"].max() < 0.5


def test_duplicates_and_similarity_count_within_each_set():
    melodies = np.stack(random_walks(4, 32, seed=7))
    tokens = np.stack([melodies[0], melodies[0], melodies[1], melodies[2], melodies[3], melodies[3]])
    diversity = diversity_by_set(tokens, set_size=3)  # sets {0, 0, 1} and {2, 3, 3}
    np.testing.assert_allclose(diversity["duplicate_rate"], [2 / 3, 2 / 3])
    first_set = tokens[:3]
    agree = np.mean([np.mean(first_set[i] == first_set[j]) for i in range(3) for j in range(3) if i != j])
    assert diversity["mean_pairwise_similarity"][0] == pytest.approx(agree)


def test_hashed_distinct_ngrams_agree_with_exact_counting():
    tokens = np.stack(random_walks(60, 32, seed=8))
    exact = _distinct_ngrams_per_set(tokens, 4, set_size=20, vocab_size=38)
    hashed = _distinct_ngrams_per_set(tokens, 4, set_size=20, vocab_size=10**6)  # too big to pack: hashed
    np.testing.assert_array_equal(exact, hashed)


# ------------------------------------------------------------------------------------- pitch and rhythm
def test_pitch_statistics_of_a_c_major_scale():
    scale = melody_from_notes([60, 62, 64, 65, 67, 69, 71, 72], [4] * 8)[None]
    stats = {name: ratio(*value) for name, value in pitch_statistics(scale).items()}
    assert stats["pitch_range"] == 12
    assert stats["n_pitch_classes_used"] == 7
    assert stats["pitch_class_entropy"] == pytest.approx(2.75)  # C twice, six others once: 0.5 + 6 · 0.375
    assert stats["scale_consistency"] == 1.0
    with_f_sharp = melody_from_notes([60, 62, 64, 66, 67, 69, 71, 72], [4] * 8)[None]
    assert ratio(*pitch_statistics(with_f_sharp)["scale_consistency"]) == 1.0  # G major holds it all
    chromatic = melody_from_notes(list(range(60, 72)), [2] * 12)[None]
    assert ratio(*pitch_statistics(chromatic)["scale_consistency"]) == pytest.approx(7 / 12)


def test_melodies_without_notes_are_left_out_of_pitch_statistics():
    silent = np.full((1, 16), HOLD)
    scale = melody_from_notes([60, 64, 67, 72], [4] * 4)[None]
    stats = pitch_statistics(np.concatenate([silent, scale]))
    assert stats["pitch_range"][1].tolist() == [0.0, 1.0]
    assert ratio(*stats["pitch_range"]) == 12


def test_rhythm_statistics_count_what_sounds():
    # C held 4 steps, a rest of 4 steps (NOTE_OFF + holds), then E held 8 steps: 16 steps, 4 beats.
    tokens = melody_from_notes([60, None, 64], [4, 4, 8])[None]
    stats = {name: ratio(*value) for name, value in rhythm_statistics(tokens).items()}
    assert stats["rest_rate"] == 4 / 16
    assert stats["hold_rate"] == 10 / 16  # 3 + 7 steps sustain a note; the rest's holds do not
    assert stats["empty_beat_rate"] == 1 / 4


def test_histograms_count_notes_and_signed_intervals():
    tokens = melody_from_notes([60, 67, 60, 84], [2, 2, 2, 2])[None]  # up a fifth, down, up two octaves
    counts = pitch_class_counts(tokens)[0]
    assert counts[0] == 3 and counts[7] == 1 and counts.sum() == 4
    intervals = interval_counts(tokens, max_interval=12)
    assert intervals[12 + 7] == 1 and intervals[12 - 7] == 1 and intervals[24] == 1  # +24 clipped into ≥ +12


# ----------------------------------------------------------------------------------------------- Table 1
@pytest.mark.parametrize("paper_token_order", [False, True])
def test_table1_counts_pool_to_table1_statistics(paper_token_order):
    tokens = np.concatenate(
        [np.stack(random_walks(50, 32, seed=9)), np.random.default_rng(3).integers(0, 38, (50, 32))]
    )
    counts = table1_counts(tokens, "C major", paper_token_order=paper_token_order)
    expected = table1_statistics(tokens, key="C major", paper_token_order=paper_token_order)
    for name, (numerator, denominator) in counts.items():
        assert ratio(numerator, denominator) == pytest.approx(expected[name], abs=1e-12), name


# --------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_intervals_contain_the_estimate_and_shrink_with_more_melodies():
    rng = np.random.default_rng(0)
    for size in (200, 5000):
        events = (rng.random(size) < 0.3).astype(float)
        figure = rng.normal(5.0, 2.0, size)
        numerators = np.stack([events, figure], axis=1)
        denominators = np.ones_like(numerators)
        low, high = bootstrap_intervals(numerators, denominators, resamples=400, seed=1)
        for column in range(2):
            estimate = ratio(numerators[:, column], denominators[:, column])
            assert low[column] < estimate < high[column]
        if size == 200:
            wide = high - low
    assert ((high - low) < wide / 3).all()  # 25× the melodies: about a fifth of the width


def test_bootstrap_is_reproducible_and_undefined_metrics_are_nan():
    numerators = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    denominators = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    first = bootstrap_intervals(numerators, denominators, resamples=200, seed=4)
    second = bootstrap_intervals(numerators, denominators, resamples=200, seed=4)
    np.testing.assert_array_equal(first[0], second[0])
    assert math.isnan(first[0][1]) and math.isnan(first[1][1])
    assert 0 <= first[0][0] <= 2 / 3 <= first[1][0] <= 1


def test_grouped_bootstrap_of_many_melodies_matches_the_melody_bootstrap():
    rng = np.random.default_rng(2)
    size = 20_000
    numerators = np.stack([(rng.random(size) < 0.05).astype(float), rng.poisson(3, size).astype(float)], axis=1)
    denominators = np.stack([np.ones(size), np.full(size, 32.0)], axis=1)
    grouped = bootstrap_intervals(numerators, denominators, resamples=500, seed=0, max_units=2000)
    melodies = bootstrap_intervals(numerators, denominators, resamples=500, seed=0, max_units=size)
    width = melodies[1] - melodies[0]
    assert (np.abs(grouped[0] - melodies[0]) < 0.15 * width).all()
    assert (np.abs(grouped[1] - melodies[1]) < 0.15 * width).all()
