"""Conversions between token sequences, note lists, pretty_midi objects, MIDI files and music21 streams.

A melody is monophonic: at every 16th-note step exactly one token says whether a new pitch starts,
a rest starts, or the previous event is held. Notes are ``(start_step, end_step, pitch)`` triples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi

from .meter import DEFAULT_METER, Meter
from .vocab import DEFAULT_VOCABULARY, NO_EVENT, NOTE_OFF, Vocabulary, canonicalize

__all__ = ["canonicalize"]  # re-exported: the canonical spelling lives with the vocabulary

DEFAULT_TEMPO = 120.0
DEFAULT_PROGRAM = 0  # Acoustic Grand Piano
DEFAULT_VELOCITY = 90


@dataclass(frozen=True)
class NoteEvent:
    start: int
    """First step of the note."""
    end: int
    """Step after the note's last sounding step."""
    pitch: int
    """MIDI pitch."""


def tokens_to_notes(tokens: Iterable[int], vocab: Vocabulary = DEFAULT_VOCABULARY) -> list[NoteEvent]:
    """Notes of a token sequence; a hold after a rest (or at the start) extends the silence."""
    notes: list[NoteEvent] = []
    current: tuple[int, int] | None = None  # (start, pitch) of the sounding note
    tokens = [int(t) for t in tokens]
    for step, token in enumerate(tokens):
        if token == NO_EVENT:
            continue
        if current is not None:
            notes.append(NoteEvent(current[0], step, current[1]))
            current = None
        if token != NOTE_OFF:
            if not 0 <= token < vocab.size:
                raise ValueError(f"token {token} at step {step} is outside the vocabulary (size {vocab.size})")
            current = (step, int(vocab.token_to_pitch(token)))
    if current is not None:
        notes.append(NoteEvent(current[0], len(tokens), current[1]))
    return notes


def notes_to_tokens(
    notes: Iterable[NoteEvent], vocab: Vocabulary = DEFAULT_VOCABULARY, length: int | None = None
) -> np.ndarray:
    """Tokens of a monophonic note list (the top line wins where notes start together).

    A note lasts until its end or until the next onset, whichever comes first. Pitches must lie in the
    vocabulary's range (shift or drop melodies before encoding).
    """
    by_start: dict[int, NoteEvent] = {}
    for note in notes:
        if note.start < 0:
            raise ValueError(f"note starts at negative step {note.start}")
        kept = by_start.get(note.start)
        if kept is None or note.pitch > kept.pitch:
            by_start[note.start] = note
    ordered = [by_start[s] for s in sorted(by_start)]
    last_end = max((max(n.end, n.start + 1) for n in ordered), default=0)
    total = last_end if length is None else length
    tokens = np.full(total, NOTE_OFF, dtype=np.int64)
    # Steps after a rest's first step are holds of that rest, which is how RL Tuner writes silence.
    tokens[:] = NO_EVENT
    if total:
        tokens[0] = NOTE_OFF
    for i, note in enumerate(ordered):
        if note.start >= total:
            break
        if not vocab.min_pitch <= note.pitch <= vocab.max_pitch:
            raise ValueError(f"pitch {note.pitch} is outside the vocabulary range {vocab.min_pitch}..{vocab.max_pitch}")
        next_start = ordered[i + 1].start if i + 1 < len(ordered) else total
        end = min(max(note.end, note.start + 1), next_start, total)
        tokens[note.start] = vocab.pitch_to_token(note.pitch)
        tokens[note.start + 1 : end] = NO_EVENT
        if end < next_start and end < total:
            tokens[end] = NOTE_OFF
    return tokens


def tokens_to_pretty_midi(
    tokens: Iterable[int],
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    tempo: float = DEFAULT_TEMPO,
    program: int = DEFAULT_PROGRAM,
    velocity: int = DEFAULT_VELOCITY,
    meter: Meter | str = DEFAULT_METER,
    key: str | None = None,
) -> pretty_midi.PrettyMIDI:
    """A one-instrument PrettyMIDI of the melody at a fixed tempo, with its time signature and (given ``key``,
    e.g. "D minor") its key signature."""
    meter = Meter.parse(meter, vocab)
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(meter.numerator, meter.denominator, 0.0))
    if key:
        pm.key_signature_changes.append(pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(key), 0.0))
    instrument = pretty_midi.Instrument(program=program, name="melody")
    seconds_per_step = 60.0 / tempo / vocab.steps_per_quarter
    for note in tokens_to_notes(tokens, vocab):
        instrument.notes.append(
            pretty_midi.Note(
                velocity=velocity,
                pitch=note.pitch,
                start=note.start * seconds_per_step,
                end=note.end * seconds_per_step,
            )
        )
    pm.instruments.append(instrument)
    return pm


def choose_melody_instrument(pm: pretty_midi.PrettyMIDI) -> pretty_midi.Instrument | None:
    """The melodic track: among non-drum tracks with at least a quarter of the busiest track's notes,
    the one with the highest mean pitch. None when there is no pitched note."""
    pitched = [inst for inst in pm.instruments if not inst.is_drum and inst.notes]
    if not pitched:
        return None
    busiest = max(len(inst.notes) for inst in pitched)
    candidates = [inst for inst in pitched if 4 * len(inst.notes) >= busiest]
    return max(candidates, key=lambda inst: float(np.mean([n.pitch for n in inst.notes])))


def pretty_midi_to_notes(
    pm: pretty_midi.PrettyMIDI, steps_per_quarter: int = 4, instrument: pretty_midi.Instrument | None = None
) -> list[NoteEvent]:
    """Notes of the melodic track on the step grid (tempo changes respected via MIDI ticks)."""
    instrument = instrument or choose_melody_instrument(pm)
    if instrument is None:
        return []
    ticks_per_step = pm.resolution / steps_per_quarter
    notes = []
    for note in instrument.notes:
        start = int(round(pm.time_to_tick(note.start) / ticks_per_step))
        end = int(round(pm.time_to_tick(note.end) / ticks_per_step))
        notes.append(NoteEvent(start, max(end, start + 1), note.pitch))
    return notes


def pretty_midi_to_tokens(
    pm: pretty_midi.PrettyMIDI, vocab: Vocabulary = DEFAULT_VOCABULARY, length: int | None = None
) -> np.ndarray:
    """Tokens of the melodic track, from step 0 of the file."""
    return notes_to_tokens(pretty_midi_to_notes(pm, vocab.steps_per_quarter), vocab, length)


def write_midi(
    tokens: Iterable[int],
    path: str | Path,
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    tempo: float = DEFAULT_TEMPO,
    meter: Meter | str = DEFAULT_METER,
    key: str | None = None,
) -> Path:
    path = Path(path)
    tokens_to_pretty_midi(tokens, vocab, tempo, meter=meter, key=key).write(str(path))
    return path


def read_midi(path: str | Path, vocab: Vocabulary = DEFAULT_VOCABULARY, length: int | None = None) -> np.ndarray:
    return pretty_midi_to_tokens(pretty_midi.PrettyMIDI(str(path)), vocab, length)


def tokens_to_music21(
    tokens: Iterable[int],
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    key: str | None = None,
    meter: Meter | str = DEFAULT_METER,
):
    """A music21 Score (one part, in ``meter``) of the melody, for MusicXML export. Imports music21 lazily."""
    from music21 import key as m21key
    from music21 import meter as m21meter
    from music21 import note, stream

    tokens = [int(t) for t in tokens]
    part = stream.Part()
    part.append(m21meter.TimeSignature(Meter.parse(meter, vocab).name))
    if key:
        tonic, mode = key.split()
        part.append(m21key.Key(tonic, mode.lower()))
    step_length = 1.0 / vocab.steps_per_quarter
    events: list[tuple[int, int, int | None]] = []  # (start, end, pitch or None for a rest)
    notes = tokens_to_notes(tokens, vocab)
    cursor = 0
    for n in notes:
        if n.start > cursor:
            events.append((cursor, n.start, None))
        events.append((n.start, n.end, n.pitch))
        cursor = n.end
    if cursor < len(tokens):
        events.append((cursor, len(tokens), None))
    for start, end, pitch in events:
        duration = (end - start) * step_length
        element = note.Rest(quarterLength=duration) if pitch is None else note.Note(pitch, quarterLength=duration)
        part.append(element)
    score = stream.Score()
    score.insert(0, part)
    return score


def write_musicxml(
    tokens: Iterable[int],
    path: str | Path,
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    key: str | None = None,
    meter: Meter | str = DEFAULT_METER,
) -> Path:
    path = Path(path)
    tokens_to_music21(tokens, vocab, key, meter).write("musicxml", fp=str(path))
    return path
