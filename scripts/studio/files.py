"""A melody as MIDI, MusicXML or WAV bytes (with its key and meter), and a MIDI file read back as a melody."""

from __future__ import annotations

import io
import math
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
from notetune.pretrained.encoding import (
    NoteEvent,
    canonicalize,
    notes_to_tokens,
    pretty_midi_to_notes,
    tokens_to_music21,
    tokens_to_pretty_midi,
)
from notetune.pretrained.export import SAMPLE_RATE, render_audio
from notetune.pretrained.meter import MAX_BARS, METERS, Meter
from notetune.pretrained.vocab import Vocabulary
from notetune.rewards.keys import Key

from .errors import StudioError

MEDIA_TYPES = {"midi": "audio/midi", "musicxml": "application/vnd.recordare.musicxml+xml", "wav": "audio/wav"}
SUFFIXES = {"midi": ".mid", "musicxml": ".musicxml", "wav": ".wav"}
CLICK_SECONDS = 0.03


@dataclass(frozen=True)
class ImportedMelody:
    tokens: np.ndarray
    meter: Meter
    key: Key | None
    """The file's first key signature, if it has one."""
    octaves: int
    """Octaves the file was moved by to fit the model's range."""
    cut_bars: int
    """Bars dropped beyond the 16 a melody may have."""


def midi_bytes(tokens: np.ndarray, vocab: Vocabulary, key: Key, meter: Meter, tempo: float = 120.0) -> bytes:
    pm = tokens_to_pretty_midi(tokens, vocab, tempo, meter=meter, key=str(key))
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def musicxml_bytes(tokens: np.ndarray, vocab: Vocabulary, key: Key, meter: Meter, title: str = "") -> bytes:
    from music21 import metadata

    score = tokens_to_music21(tokens, vocab, str(key), meter)
    if title:
        score.metadata = metadata.Metadata(title=title)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "melody.musicxml"
        score.write("musicxml", fp=str(path))
        return path.read_bytes()


def metronome_clicks(length: int, meter: Meter, seconds_per_step: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A click on every beat, higher on each bar's first, as a waveform as long as ``length`` steps."""
    total = int(math.ceil(length * seconds_per_step * sample_rate))
    clicks = np.zeros(total, dtype=np.float32)
    t = np.arange(int(CLICK_SECONDS * sample_rate)) / sample_rate
    envelope = np.exp(-t / 0.006)
    for step in range(0, length, meter.steps_per_beat):
        frequency = 1760.0 if step % meter.steps_per_bar == 0 else 1175.0
        start = int(round(step * seconds_per_step * sample_rate))
        burst = (0.5 * envelope * np.sin(2 * np.pi * frequency * t)).astype(np.float32)[: total - start]
        clicks[start : start + len(burst)] += burst
    return clicks


def wav_bytes(
    tokens: np.ndarray, vocab: Vocabulary, meter: Meter, tempo: float = 120.0, metronome: bool = False
) -> tuple[bytes, str]:
    """(16-bit mono WAV as long as the melody, renderer): fluidsynth as elsewhere, with optional clicks."""
    audio, renderer = render_audio(tokens, vocab, tempo)
    seconds_per_step = 60.0 / tempo / vocab.steps_per_quarter
    total = int(math.ceil(len(tokens) * seconds_per_step * SAMPLE_RATE))
    if len(audio) < total:  # a melody ending in a rest still lasts its full length
        audio = np.concatenate([audio, np.zeros(total - len(audio), dtype=np.float32)])
    if metronome:
        audio = audio.copy()
        audio[:total] += metronome_clicks(len(tokens), meter, seconds_per_step)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.tobytes())
    return buffer.getvalue(), renderer


def read_midi_melody(data: bytes, vocab: Vocabulary, meter: Meter | None = None, field: str = "file") -> ImportedMelody:
    """The melodic track of MIDI bytes on the step grid, from the file's start, in whole bars of its meter.

    The meter is the file's first time signature when the studio knows it (else ``meter``, else 4/4); a
    melody outside the model's range moves by whole octaves; bars beyond 16 are cut.
    """
    try:
        pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as error:  # mido and pretty_midi raise many kinds of errors for bad files
        raise StudioError(field, f"not a readable MIDI file ({type(error).__name__}: {error})") from None
    notes = pretty_midi_to_notes(pm, vocab.steps_per_quarter)
    if not notes:
        raise StudioError(field, "the MIDI file holds no pitched notes")
    if pm.time_signature_changes:
        first = pm.time_signature_changes[0]
        meter = METERS.get(f"{first.numerator}/{first.denominator}", meter)
    meter = meter or METERS["4/4"]
    low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
    if high - low > vocab.max_pitch - vocab.min_pitch:
        raise StudioError(
            field,
            f"the melody spans MIDI {low}..{high}, wider than the model's range {vocab.min_pitch}..{vocab.max_pitch}",
        )
    octaves = 0
    while low + 12 * octaves < vocab.min_pitch:
        octaves += 1
    while high + 12 * octaves > vocab.max_pitch:
        octaves -= 1
    if low + 12 * octaves < vocab.min_pitch:
        raise StudioError(field, f"no octave moves MIDI {low}..{high} into {vocab.min_pitch}..{vocab.max_pitch}")
    notes = [NoteEvent(n.start, n.end, n.pitch + 12 * octaves) for n in notes]
    end = max(n.end for n in notes)
    bars = max(1, math.ceil(end / meter.steps_per_bar))
    kept = min(bars, MAX_BARS)
    tokens = canonicalize(notes_to_tokens(notes, vocab, kept * meter.steps_per_bar))
    key = None
    if pm.key_signature_changes:
        name = pretty_midi.key_number_to_key_name(pm.key_signature_changes[0].key_number)
        try:
            key = Key.parse(name)
        except ValueError:
            key = None
    return ImportedMelody(tokens, meter, key, octaves, bars - kept)
