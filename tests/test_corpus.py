"""Building a corpus from music21's bundled melodies and a folder of user MIDI files, bad files included."""

import json

import numpy as np
import pretty_midi
import pytest
from notetune.pretrained.corpus import (
    CorpusError,
    Job,
    build_corpus,
    load_corpus,
    midi_jobs,
    music21_jobs,
    split_abc_tunes,
    transposition_to_c,
)
from notetune.pretrained.vocab import DEFAULT_VOCABULARY


def write_melody_midi(path, pitches, program=0, drum=False, step=0.125, length=None):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=program, is_drum=drum)
    for i, pitch in enumerate(pitches):
        inst.notes.append(
            pretty_midi.Note(90, pitch, i * 2 * step, i * 2 * step + (2 * step if length is None else length))
        )
    pm.instruments.append(inst)
    pm.write(str(path))


@pytest.fixture
def midi_folder(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    d_major = [62, 64, 66, 67, 69, 71, 73, 74, 73, 71, 69, 67, 66, 64, 62, 62]
    write_melody_midi(folder / "good.mid", d_major)
    # Two tracks: a bass line and the melody; the melody (higher) track must be chosen.
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for program, offset in ((32, -24), (0, 0)):
        inst = pretty_midi.Instrument(program=program)
        for i, pitch in enumerate(d_major):
            inst.notes.append(pretty_midi.Note(90, pitch + offset, i * 0.25, i * 0.25 + 0.25))
        pm.instruments.append(inst)
    pm.write(str(folder / "two_tracks.mid"))
    write_melody_midi(folder / "drums.mid", [36, 38] * 8, drum=True)
    write_melody_midi(folder / "zero.mid", d_major, length=0.0)
    (folder / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage-not-midi")
    (folder / "empty.mid").write_bytes(b"")
    pretty_midi.PrettyMIDI().write(str(folder / "no_notes.mid"))
    return folder


def test_abc_opus_is_split_into_tunes():
    text = "%abc\nM:4/4\nX:1\nT:a\nK:C\nCDEF|\n\nX:2\nT:b\nK:G\nGABc|\n"
    tunes = split_abc_tunes(text)
    assert len(tunes) == 2
    assert tunes[0].startswith("X:1") and "M:4/4" in tunes[0] and "CDEF" in tunes[0]
    assert tunes[1].startswith("X:2") and "GABc" in tunes[1]


def test_transposition_moves_keys_to_c_major_and_a_minor():
    pitches = np.array([62, 74])
    assert transposition_to_c(2, "major", pitches, DEFAULT_VOCABULARY) == -2  # D major → C major
    assert transposition_to_c(4, "minor", np.array([64, 76]), DEFAULT_VOCABULARY) == 5  # E minor → A minor
    assert transposition_to_c(0, "major", np.array([30, 90]), DEFAULT_VOCABULARY) is None  # wider than the range


def test_build_from_music21_and_a_midi_folder_skips_and_counts_bad_files(tmp_path, midi_folder):
    abc_jobs = [job for job in music21_jobs(["oneills1850"]) if job.source.startswith("oneills1850/0001")][:3]
    bach = [job for job in music21_jobs(["bach"]) if job.source == "bach/bwv269.mxl"]
    jobs = abc_jobs + bach + list(midi_jobs(midi_folder))
    out = tmp_path / "corpus.npz"
    summary = build_corpus(jobs, out, workers=1, progress=False)
    reasons = {source.rsplit("/", 1)[-1]: reason for source, reason in summary.skipped_files}
    assert reasons["corrupt.mid"] == "corrupt" and reasons["drums.mid"] == "drums_only"
    assert reasons["empty.mid"] == "empty" and reasons["no_notes.mid"] == "empty"
    assert reasons["zero.mid"] in ("zero_length", "too_short")
    # O'Neill's tunes 1 and 3 put two notes on one 16th step and are dropped; tune 2, the chorale and the
    # one-track MIDI file remain (the two-track file is the same melody and is removed as a duplicate).
    assert summary.skipped["two_notes_on_one_step"] == 2
    assert summary.melodies == 3 and summary.duplicates_removed == 1
    corpus = load_corpus(out)
    assert len(corpus) == summary.melodies
    sources = [str(s) for s in corpus.source]
    assert any(s.endswith("good.mid") for s in sources) and any(s.startswith("bach/") for s in sources)
    with np.load(out) as data:
        keys = dict(zip([str(s) for s in data["source"]], data["original_key"], strict=False))
        moves = dict(zip([str(s) for s in data["source"]], data["transposition"], strict=False))
    good = next(s for s in sources if s.endswith("good.mid"))
    # A D-major scale (Krumhansl-Schmuckler may call it the relative B minor): either way down a tone.
    assert keys[good] in ("D major", "B minor") and moves[good] % 12 == 10
    # Two-track file: the melody (top) track was chosen, so it equals the one-track file and is a duplicate.
    assert summary.duplicates_removed >= 1
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["sha256"] == corpus.sha256 and info["melodies"] == len(corpus)


def test_build_with_no_melody_stops_with_a_clear_error(tmp_path, midi_folder):
    jobs = [Job("midi", str(midi_folder / name), str(midi_folder / name)) for name in ("corrupt.mid", "empty.mid")]
    with pytest.raises(CorpusError, match="the corpus is empty.*corrupt"):
        build_corpus(jobs, tmp_path / "c.npz", workers=1, progress=False)


def test_missing_or_foreign_corpus_file_is_refused(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(CorpusError, match="not a notetune corpus"):
        load_corpus(tmp_path / "other.npz")
