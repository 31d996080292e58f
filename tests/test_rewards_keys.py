"""Keys: parsing, names, and the token tables the rules read (C major must equal RL Tuner's constants)."""

import numpy as np
import pytest
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary
from notetune.rewards import ALL_KEYS, Key

RL_TUNER_C_MAJOR_KEY = [0, 1, 2, 4, 6, 7, 9, 11, 13, 14, 16, 18, 19, 21, 23, 25, 26, 28, 30, 31, 33, 35, 37]


@pytest.mark.parametrize(
    ("text", "tonic", "mode", "name"),
    [
        ("C major", 0, "major", "C major"),
        ("D minor", 2, "minor", "D minor"),
        ("F# major", 6, "major", "F# major"),
        ("Bb minor", 10, "minor", "Bb minor"),
        ("a minor", 9, "minor", "A minor"),
        ("Am", 9, "minor", "A minor"),
        ("G", 7, "major", "G major"),
        ("Cb major", 11, "major", "B major"),
        ("E♭ major", 3, "major", "Eb major"),
    ],
)
def test_parse_and_name(text, tonic, mode, name):
    key = Key.parse(text)
    assert (key.tonic, key.mode) == (tonic, mode)
    assert str(key) == name
    assert Key.parse(str(key)) == key


def test_unreadable_key_names_the_format():
    with pytest.raises(ValueError, match=r"cannot read key 'H dorian'; write a tonic and a mode, e\.g\. 'C major'"):
        Key.parse("H dorian")
    with pytest.raises(ValueError, match="tonic must be a pitch class 0..11"):
        Key(12, "major")


def test_c_major_tables_equal_rl_tuners():
    key = Key.parse("C major")
    assert key.in_key_tokens(DEFAULT_VOCABULARY).tolist() == RL_TUNER_C_MAJOR_KEY
    assert key.tonic_token(DEFAULT_VOCABULARY) == 14
    assert key.tonic_tokens(DEFAULT_VOCABULARY).tolist() == [2, 14, 26]
    assert key.tonic_and_dominant == {0, 7} and key.tonic_and_mediant == {0, 4}
    assert np.flatnonzero(key.degree_mask(DEFAULT_VOCABULARY, (1, 5))).tolist() == [2, 9, 14, 21, 26, 33]
    assert np.flatnonzero(key.degree_mask(DEFAULT_VOCABULARY, (1, 3))).tolist() == [2, 6, 14, 18, 26, 30]


def test_a_minor_has_c_majors_notes_and_tonic_a4():
    a_minor = Key.parse("A minor")
    assert a_minor.in_key_tokens(DEFAULT_VOCABULARY).tolist() == RL_TUNER_C_MAJOR_KEY
    assert a_minor.tonic_token(DEFAULT_VOCABULARY) == 23  # A4 = MIDI 69
    assert a_minor.tonic_and_dominant == {9, 4} and a_minor.tonic_and_mediant == {9, 0}  # A/E, A/C


def test_all_24_keys_have_seven_pitch_classes_and_a_tonic_in_octave_4():
    assert len(ALL_KEYS) == 24 and len(set(ALL_KEYS)) == 24
    for key in ALL_KEYS:
        in_key = key.in_key_tokens(DEFAULT_VOCABULARY)
        pitches = in_key[in_key >= 2] + 46
        assert sorted({p % 12 for p in pitches}) == sorted(key.scale_pitch_classes)
        assert 60 <= key.tonic_token(DEFAULT_VOCABULARY) + 46 <= 71
        assert Key.parse(str(key)) == key


def test_tonic_moves_to_the_nearest_octave_in_a_small_vocabulary():
    low = Vocabulary(min_pitch=36, max_pitch=59)
    assert low.token_to_pitch(Key.parse("C major").tonic_token(low)) == 48
