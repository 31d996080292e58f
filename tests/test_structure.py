"""Structure statistics on hand-made melodies: bar returns, phrase similarity, form, cadences, climax."""

from __future__ import annotations

import numpy as np
import pytest
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NO_EVENT, NOTE_OFF
from notetune.rewards.statistics import table1_counts
from notetune.rewards.structure import (
    bar_repetition,
    detect_forms,
    ends_with_cadence,
    form_compliance_counts,
    form_shares,
    phrase_similarity,
    structure_counts,
    structure_statistics,
    windowed_table1_counts,
)


def play(*notes: tuple[int | None, int]) -> np.ndarray:
    """Tokens of (MIDI pitch or None for a rest, steps) pairs."""
    tokens: list[int] = []
    for pitch, steps in notes:
        tokens.append(NOTE_OFF if pitch is None else int(DEFAULT_VOCABULARY.pitch_to_token(pitch)))
        tokens.extend([NO_EVENT] * (steps - 1))
    return np.array(tokens, dtype=np.int64)


C, D, E, F, G, A = 60, 62, 64, 65, 67, 69
SCALE_UP = play((C, 4), (D, 4), (E, 4), (F, 4))
SCALE_UP_FROM_D = play((D, 4), (E, 4), (F + 1, 4), (G, 4))  # same rhythm and intervals, a tone higher
DOTTED = play((C, 6), (D, 2), (E, 4), (F, 4))  # same pitches, another rhythm


def test_bar_repetition_exact_and_transposed():
    piece = np.concatenate([SCALE_UP, SCALE_UP, SCALE_UP_FROM_D, DOTTED])[None]
    exact, transposed = bar_repetition(piece, "4/4")
    assert exact.tolist() == [[False, True, False, False]]
    assert transposed.tolist() == [[False, True, True, False]]
    counts = structure_counts(piece, "4/4")
    assert counts["bar_repeated_exact"] == (pytest.approx([1.0]), pytest.approx([3.0]))  # of the 3 later bars
    assert counts["bar_repeated_transposed"][0].tolist() == [2.0]
    assert counts["distinct_bars"][0].tolist() == [3.0]


def test_bars_follow_the_meter():
    waltz_bar = play((C, 4), (E, 4), (G, 4))  # 12 steps: one bar of 3/4 or 6/8
    piece = np.tile(waltz_bar, 4)[None]
    assert bar_repetition(piece, "3/4")[0].tolist() == [[False, True, True, True]]
    # Read in 4/4 the same 48 steps are three 16-step bars that do not line up with the figure.
    assert bar_repetition(piece, "4/4")[0].tolist() == [[False, False, False]]


def test_phrase_similarity_allows_transposition_and_counts_rhythm():
    phrase = np.concatenate([SCALE_UP, play((G, 8), (E, 8))])
    up_a_tone = np.concatenate([SCALE_UP_FROM_D, play((A, 8), (F + 1, 8))])
    other_rhythm = np.concatenate([DOTTED, play((G, 8), (E, 8))])
    similarity = phrase_similarity(np.concatenate([phrase, up_a_tone, other_rhythm])[None], 32)[0]
    assert similarity[0, 1] == 1.0
    # steps 4-6 disagree: C still held under D, then the late D starts where the other D is held
    assert similarity[0, 2] == pytest.approx(29 / 32)
    assert np.allclose(np.diag(similarity), 1.0) and np.allclose(similarity, similarity.T)


A_PHRASE = np.concatenate([SCALE_UP, play((G, 8), (E, 4), (D, 4))])
B_PHRASE = play((A, 2), (G, 2), (F, 2), (E, 2), (D, 8), (F, 4), (A, 4), (G, 8))
C_PHRASE = play((E, 8), (E, 2), (F, 2), (G, 4), (C + 12, 12), (None, 4))
D_PHRASE = play((F, 4), (A, 4), (C + 12, 8), (A, 2), (F, 2), (D, 4), (C, 8))
A_VARIED = np.concatenate([SCALE_UP, play((None, 4), (A, 4), (C + 12, 8))])  # A's first half, then new


def test_detected_forms_and_their_shares():
    pieces = np.stack(
        [
            np.concatenate([A_PHRASE, A_PHRASE, B_PHRASE, A_PHRASE]),
            np.concatenate([A_PHRASE, B_PHRASE, C_PHRASE, D_PHRASE]),
            np.concatenate([A_PHRASE, A_VARIED, B_PHRASE, A_PHRASE]),
            np.concatenate([A_PHRASE, A_PHRASE, B_PHRASE, A_PHRASE]),
        ]
    )
    forms = detect_forms(pieces, 32)
    assert forms.tolist() == ["AABA", "ABCD", "AA'BA", "AABA"]
    shares = form_shares(forms)
    assert list(shares) == ["AABA", "AA'BA", "ABCD"]
    assert shares["AABA"][0].tolist() == [1, 0, 0, 1]


def test_cadences_need_a_quarter_on_a_stable_degree():
    phrases = np.stack(
        [
            play((C, 8), (D, 4), (G, 4)),  # ends on the dominant, a quarter
            play((C, 8), (D, 6), (G, 2)),  # the dominant, but an 8th
            play((C, 8), (E, 4), (F, 4)),  # a quarter, but on the 4th degree
            play((C, 8), (G, 4), (None, 4)),  # the dominant, then a breath
        ]
    )
    assert ends_with_cadence(phrases, "C major").tolist() == [True, False, False, True]
    assert ends_with_cadence(phrases, "C major", degrees=(1,)).tolist() == [False] * 4
    assert ends_with_cadence(phrases, "G major", degrees=(1,)).tolist() == [True, False, False, True]
    # A piece ends on its last note, not on a rest after it.
    assert ends_with_cadence(phrases, "G major", degrees=(1,), to_the_end=True).tolist() == [True, False, False, False]


def test_cadences_in_six_eight():
    phrase = play((E, 6), (D, 3), (C, 3), (D, 6), (G, 6))  # two 6/8 bars ending on a dotted quarter G
    piece = np.concatenate([phrase, play((E, 6), (D, 3), (E, 3), (D, 6), (C, 6))])[None]
    counts = structure_counts(piece, "6/8", phrase_bars=2)
    assert counts["phrase_cadences"][0].tolist() == [2.0] and counts["phrase_cadences"][1].tolist() == [2.0]
    assert counts["ends_on_tonic"][0].tolist() == [1.0]


def test_unique_climax_and_its_position():
    late = np.concatenate([A_PHRASE, D_PHRASE])  # the high C (72) once, in the second half
    twice = np.concatenate([C_PHRASE, D_PHRASE])  # 72 twice
    early = np.concatenate([D_PHRASE, A_PHRASE])
    counts = structure_counts(np.stack([late, twice, early]), "4/4")
    assert counts["unique_climax"][0].tolist() == [1.0, 0.0, 1.0]
    assert counts["climax_in_second_half"][0].tolist() == [1.0, 0.0, 0.0]


def test_table1_on_bar_aligned_windows_pools_per_piece():
    rng = np.random.default_rng(0)
    pieces = rng.integers(0, DEFAULT_VOCABULARY.size, size=(3, 128))
    pieces[0, 32] = pieces[0, 96] = DEFAULT_VOCABULARY.pitch_to_token(60)  # two windows start on the tonic
    windowed = windowed_table1_counts(pieces, "4/4")
    direct = table1_counts(pieces.reshape(12, 32))
    for name, (numerator, denominator) in windowed.items():
        assert np.allclose(numerator, direct[name][0].reshape(3, 4).sum(axis=1)), name
        assert np.allclose(denominator, direct[name][1].reshape(3, 4).sum(axis=1)), name
    assert windowed["starts_with_tonic"][1].tolist() == [4.0, 4.0, 4.0]
    assert windowed["starts_with_tonic"][0][0] >= 2
    assert windowed_table1_counts(pieces[:, :96], "3/4")["hold_share"][1].tolist() == [96.0] * 3  # 24-step windows


def test_shipped_corpus_first_eight_bars_match_the_issue():
    from notetune.pretrained.corpus import load_corpus

    corpus = load_corpus("pretrained/data/corpus.npz").windows(128, from_start_only=True)
    stats = structure_statistics(corpus, "4/4")
    assert len(corpus) == 8893
    assert round(100 * stats["bar_repeated_exact"], 1) == 14.5
    assert round(100 * stats["bar_repeated_transposed"], 1) == 16.7


def test_form_compliance_per_piece():
    from notetune.pretrained.form import Form

    pieces = np.stack(
        [
            np.concatenate([A_PHRASE, A_PHRASE, B_PHRASE, A_PHRASE]),
            np.concatenate([A_PHRASE, B_PHRASE, C_PHRASE, D_PHRASE]),
            np.concatenate([A_PHRASE, A_PHRASE, A_PHRASE, A_PHRASE]),
        ]
    )
    counts = form_compliance_counts(pieces, Form.parse("AABA").layout(128))
    assert counts["returns_agree"][0].tolist() == [1.0, 0.0, 1.0]
    assert counts["contrasts_differ"][0].tolist() == [1.0, 1.0, 0.0]  # AAAA has no B
    assert counts["form_followed"][0].tolist() == [1.0, 0.0, 0.0]
    varied = np.concatenate([A_PHRASE, A_VARIED, B_PHRASE, A_PHRASE])[None]
    primed = form_compliance_counts(np.concatenate([varied, pieces[:1]]), Form.parse("AA'BA").layout(128))
    assert primed["form_followed"][0].tolist() == [1.0, 0.0]  # a plain copy is no variation
