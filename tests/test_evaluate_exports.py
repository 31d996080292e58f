"""`notetune sample --format midi,musicxml,wav`: files a musician opens, and that evaluate back unchanged."""

import wave

import numpy as np
from notetune.agents.sources import load_source
from notetune.pretrained.encoding import canonicalize, read_midi
from notetune.rewards.evaluation import evaluate_tokens
from notetune.scripts.cli import main


def test_sample_exports_every_format_and_the_midi_folder_evaluates_like_the_npz(tmp_path, tiny_prior_dir):
    out = tmp_path / "samples"
    assert (
        main(
            [
                "sample",
                "--model",
                tiny_prior_dir,
                "--num",
                "4",
                "--seed",
                "2",
                "--out",
                str(out),
                "--format",
                "midi,musicxml,wav",
            ]
        )
        == 0
    )
    with np.load(out / "samples.npz") as data:
        tokens = data["tokens"]
    midis = sorted(out.glob("*.mid"))
    assert len(midis) == 4 and len(sorted(out.glob("*.musicxml"))) == 4 and len(sorted(out.glob("*.wav"))) == 4
    for melody, midi in zip(tokens, midis, strict=True):
        np.testing.assert_array_equal(read_midi(midi, length=32), canonicalize(melody))  # the same notes
    with wave.open(str(sorted(out.glob("*.wav"))[0])) as audio:
        assert audio.getnchannels() == 1 and audio.getnframes() / audio.getframerate() >= 4.0  # 2 bars at 120 bpm
    text = sorted(out.glob("*.musicxml"))[0].read_text()
    assert "<score-partwise" in text and "<note" in text

    midi_folder = tmp_path / "midi"
    midi_folder.mkdir()
    for midi in midis:
        (midi_folder / midi.name).write_bytes(midi.read_bytes())
    from_midi = load_source(midi_folder)
    assert from_midi.kind == "samples" and from_midi.label == "midi"
    from_npz = evaluate_tokens(canonicalize(tokens), resamples=20)
    evaluated = evaluate_tokens(from_midi.tokens, resamples=20)
    for name in ("not_in_key", "pitch_range", "rest_rate", "hold_rate", "pitch_class_entropy"):
        assert evaluated.metrics[name].value == from_npz.metrics[name].value, name
