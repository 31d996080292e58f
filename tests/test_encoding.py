"""Tokens ↔ notes ↔ MIDI ↔ music21: round trips a user relies on when exporting and re-reading melodies."""

import numpy as np
import pytest
from notetune.pretrained.corpus import DEFAULT_CORPUS, load_corpus
from notetune.pretrained.encoding import (
    NoteEvent,
    canonicalize,
    notes_to_tokens,
    read_midi,
    tokens_to_music21,
    tokens_to_notes,
    write_midi,
    write_musicxml,
)
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary


def test_default_vocabulary_is_rl_tuners():
    assert DEFAULT_VOCABULARY.size == 38
    assert DEFAULT_VOCABULARY.pitch_to_token(60) == 14  # C4 is the tonic class
    assert DEFAULT_VOCABULARY.token_to_pitch(23) == 69  # A4


def test_tokens_to_notes_reads_holds_and_rests():
    notes = tokens_to_notes([14, 1, 1, 0, 1, 16, 18, 1])
    assert notes == [NoteEvent(0, 3, 60), NoteEvent(5, 6, 62), NoteEvent(6, 8, 64)]


def test_canonical_silence_is_one_rest_then_holds():
    assert canonicalize(np.array([1, 1, 0, 0, 5, 1, 0, 0, 1, 7, 0])).tolist() == [
        0,
        1,
        1,
        1,
        5,
        1,
        0,
        1,
        1,
        7,
        0,
    ]


def test_random_melodies_survive_a_midi_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    tokens = canonicalize(rng.integers(0, 38, size=(100, 32)))
    for melody in tokens:
        path = write_midi(melody, tmp_path / "m.mid")
        assert read_midi(path, length=32).tolist() == melody.tolist()


@pytest.mark.skipif(not DEFAULT_CORPUS.is_file(), reason=f"shipped corpus {DEFAULT_CORPUS} missing")
def test_corpus_melodies_survive_a_midi_round_trip(tmp_path):
    corpus = load_corpus(DEFAULT_CORPUS)
    for index in range(0, len(corpus), len(corpus) // 150):
        melody = corpus.melody(index)
        path = write_midi(melody, tmp_path / "m.mid")
        assert np.array_equal(read_midi(path, length=len(melody)), melody), corpus.source[index]


def test_pitch_range_is_a_setting():
    vocab = Vocabulary(min_pitch=36, max_pitch=95)
    assert vocab.size == 62
    tokens = notes_to_tokens([NoteEvent(0, 2, 36), NoteEvent(2, 4, 95)], vocab)
    assert tokens.tolist() == [2, 1, 61, 1]
    with pytest.raises(ValueError, match="outside the vocabulary range"):
        notes_to_tokens([NoteEvent(0, 1, 30)], vocab)


def test_music21_stream_and_musicxml(tmp_path):
    melody = [14, 1, 1, 1, 16, 1, 0, 1, 18, 1, 1, 1, 1, 1, 1, 1]
    score = tokens_to_music21(melody, key="C major")
    notes = list(score.flatten().notes)
    assert [n.pitch.midi for n in notes] == [60, 62, 64]
    assert [n.quarterLength for n in notes] == [1.0, 0.5, 2.0]
    path = write_musicxml(melody, tmp_path / "m.musicxml")
    text = path.read_text()
    assert "<score-partwise" in text and text.count("<note") >= 4


@pytest.mark.parametrize(("meter", "key"), [("3/4", "D minor"), ("6/8", "Bb major"), ("4/4", None)])
def test_midi_and_musicxml_files_carry_the_meter_and_key(tmp_path, meter, key):
    import pretty_midi
    from music21 import converter

    melody = [14, 1, 1, 1, 16, 1, 0, 1, 18, 1, 1, 1]
    pm = pretty_midi.PrettyMIDI(str(write_midi(melody, tmp_path / "m.mid", meter=meter, key=key)))
    signature = pm.time_signature_changes[0]
    assert f"{signature.numerator}/{signature.denominator}" == meter
    keys = [pretty_midi.key_number_to_key_name(k.key_number).lower() for k in pm.key_signature_changes]
    assert keys == ([key.lower()] if key else [])
    assert read_midi(tmp_path / "m.mid", length=12).tolist() == melody  # still reads back
    score = converter.parse(str(write_musicxml(melody, tmp_path / "m.musicxml", key=key, meter=meter)))
    assert score.recurse().getElementsByClass("TimeSignature")[0].ratioString == meter
