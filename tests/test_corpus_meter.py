"""The corpus records each melody's time signature and pickup, so windows and bar statistics can be bar-aligned."""

import json

import numpy as np
import pretty_midi
import pytest
from notetune.pretrained.corpus import (
    BuildSummary,
    Job,
    Melody,
    analyze_key,
    analyze_key_music21,
    build_corpus,
    load_corpus,
    meter_bar_steps,
    midi_jobs,
    write_corpus,
)
from notetune.pretrained.encoding import NoteEvent
from notetune.pretrained.vocab import DEFAULT_VOCABULARY

# A jig with a one-eighth pickup (2 sixteenths), a reel that starts on the downbeat, a waltz with a
# one-quarter pickup (4 sixteenths).
JIG = "X:1\nT:jig\nM:6/8\nL:1/8\nK:G\nD|GAB cde|dBG AFD|GAB cde|dBG G2:|\n"
REEL = "X:2\nT:reel\nM:4/4\nL:1/8\nK:D\nDFAF dFAF|GBdB gBdB|DFAF dFAF|EFGA B2A2|\n"
WALTZ = "X:3\nT:waltz\nM:3/4\nL:1/8\nK:C\nG2|c2e2g2|f2d2B2|c2e2g2|a4g2|f2d2B2|c6|\n"


def write_midi(path, numerator, denominator, first_beat):
    """A one-track file in numerator/denominator whose first note starts ``first_beat`` quarters into a bar."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(numerator, denominator, 0.0))
    inst = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65]):
        start = (first_beat + i) * 0.5  # a quarter = 0.5 s at 120 bpm
        inst.notes.append(pretty_midi.Note(90, pitch, start, start + 0.5))
    pm.instruments.append(inst)
    pm.write(str(path))


@pytest.fixture
def built(tmp_path):
    folder = tmp_path / "my_midis"
    folder.mkdir()
    write_midi(folder / "waltz_upbeat.mid", 3, 4, first_beat=2)  # starts on beat 3: pickup of one quarter
    jobs = [Job("abc", f"folk/t.abc#X:{i}", text, "folk") for i, text in enumerate((JIG, REEL, WALTZ), 1)]
    jobs += list(midi_jobs(folder))
    out = tmp_path / "corpus.npz"
    summary = build_corpus(jobs, out, workers=1, progress=False)
    return load_corpus(out), summary, out, folder


def test_meter_and_pickup_of_each_melody_are_recorded(built):
    corpus, summary, _, _ = built
    assert summary.melodies == 4
    by_source = {str(s): i for i, s in enumerate(corpus.source)}
    figures = {s.rsplit("/", 1)[-1]: (str(corpus.meter[i]), int(corpus.pickup[i])) for s, i in by_source.items()}
    assert figures["t.abc#X:1"] == ("6/8", 2)
    assert figures["t.abc#X:2"] == ("4/4", 0)
    assert figures["t.abc#X:3"] == ("3/4", 4)
    assert figures["waltz_upbeat.mid"] == ("3/4", 4)
    bar_steps = {s.rsplit("/", 1)[-1]: corpus.bar_steps(i) for s, i in by_source.items()}
    assert bar_steps == {"t.abc#X:1": 12, "t.abc#X:2": 16, "t.abc#X:3": 12, "waltz_upbeat.mid": 12}


def test_the_summary_names_a_midi_folders_melodies_by_the_folder(built):
    _, _, out, folder = built
    sources = json.loads(out.with_suffix(".json").read_text())["sources"]
    assert sources == {"folk": 3, str(folder): 1}
    assert "" not in sources


def test_bar_aligned_windows_start_at_the_first_bar_line(built):
    corpus, _, _, _ = built
    jig = next(i for i, s in enumerate(corpus.source) if str(s).endswith("#X:1"))
    melody = corpus.melody(jig)
    plain = corpus.windows(12, from_start_only=True)
    aligned = corpus.windows(12, from_start_only=True, bar_aligned=True)
    assert any(np.array_equal(row, melody[:12]) for row in plain)
    assert any(np.array_equal(row, melody[2:14]) for row in aligned)  # after the eighth-note pickup


def test_a_corpus_file_without_meters_still_loads(tmp_path):
    path = tmp_path / "old.npz"
    write_corpus(
        [Melody(np.array([14, 1] * 20, dtype=np.uint8), "a", "C major", 0)], path, DEFAULT_VOCABULARY, BuildSummary()
    )
    with np.load(path) as data:  # as files written before meters and pickups were recorded
        old = {k: data[k] for k in data.files if k not in ("meter", "pickup")}
    np.savez_compressed(path, **old)
    corpus = load_corpus(path)
    assert list(corpus.meter) == [""] and list(corpus.pickup) == [0] and corpus.bar_steps(0) == 16
    assert corpus.windows(32, bar_aligned=True).shape == (1, 32)


def test_time_signatures_give_steps_per_bar():
    assert [meter_bar_steps(m) for m in ("4/4", "6/8", "3/4", "2/2", "3/8", "", "x")] == [16, 12, 12, 16, 6, 0, 0]


def test_key_analysis_gives_music21s_answer():
    rng = np.random.default_rng(0)
    for _ in range(20):
        start = np.cumsum(rng.integers(1, 5, 24))
        notes = [
            NoteEvent(int(s), int(s + d), int(p))
            for s, d, p in zip(start, rng.integers(1, 4, 24), rng.integers(55, 80, 24), strict=True)
        ]
        assert analyze_key(notes) == analyze_key_music21(notes)
