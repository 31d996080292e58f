"""Keys (tonic + mode) and the token tables the music-theory rules read from them.

RL Tuner hard-coded C major. Every rule here takes a :class:`Key` instead, and C major reproduces RL Tuner's
tables exactly: the in-key token set, the tonic token 14 (C4) and the pitch-class sets of the interval rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.vocab import NO_EVENT, NOTE_OFF, NUM_SPECIAL, Vocabulary

Mode = Literal["major", "minor"]

SCALE_STEPS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor: A minor has exactly C major's notes
}
"""Semitones above the tonic of scale degrees 1..7."""

_LETTER_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
_KEY_PATTERN = re.compile(r"^\s*([A-Ga-g])([#b♯♭]*)\s*(major|minor|maj|min|m)?\s*$", re.IGNORECASE)

TONIC_OCTAVE_LOW = 60
"""The tonic token sits in MIDI 60..71 (C4 = class 14 in C major, A4 = class 23 in A minor), as RL Tuner."""


@dataclass(frozen=True)
class Key:
    """A major or minor key: the tonic's pitch class (0 = C, ..., 11 = B) and the mode."""

    tonic: int = 0
    """Pitch class of the tonic, 0..11 (0 = C)."""
    mode: Mode = "major"
    """"major" or "minor" (natural minor)."""

    def __post_init__(self) -> None:
        if not (isinstance(self.tonic, int) and 0 <= self.tonic <= 11):
            raise ValueError(f"tonic must be a pitch class 0..11, got {self.tonic!r}")
        if self.mode not in SCALE_STEPS:
            raise ValueError(f"mode must be 'major' or 'minor', got {self.mode!r}")

    @classmethod
    def parse(cls, text: str | Key) -> Key:
        """A key from text such as "C major", "D minor", "F# major", "Bb minor", "Am" or "G"."""
        if isinstance(text, Key):
            return text
        match = _KEY_PATTERN.match(str(text))
        if match is None:
            raise UserInputError(
                f"cannot read key {text!r}; write a tonic and a mode, e.g. 'C major', 'F# minor', 'Bb major'"
            )
        letter, accidentals, mode = match.groups()
        tonic = _LETTER_PITCH_CLASS[letter.upper()]
        tonic += accidentals.count("#") + accidentals.count("♯") - accidentals.count("b") - accidentals.count("♭")
        mode_name: Mode = "minor" if mode is not None and mode.lower() in ("minor", "min", "m") else "major"
        return cls(tonic % 12, mode_name)

    def __str__(self) -> str:
        names = _MAJOR_NAMES if self.mode == "major" else _MINOR_NAMES
        return f"{names[self.tonic]} {self.mode}"

    @property
    def scale_pitch_classes(self) -> tuple[int, ...]:
        """Pitch classes of scale degrees 1..7, tonic first."""
        return tuple((self.tonic + step) % 12 for step in SCALE_STEPS[self.mode])

    def degree_pitch_class(self, degree: int) -> int:
        """Pitch class of a scale degree (1 = tonic, 3 = mediant, 5 = dominant)."""
        if not 1 <= degree <= 7:
            raise ValueError(f"scale degree must be 1..7, got {degree}")
        return self.scale_pitch_classes[degree - 1]

    @property
    def tonic_and_dominant(self) -> frozenset[int]:
        """Pitch classes the interval rule treats as stable: RL Tuner's "C or G" in C major."""
        return frozenset({self.degree_pitch_class(1), self.degree_pitch_class(5)})

    @property
    def tonic_and_mediant(self) -> frozenset[int]:
        """Pitch classes from which the interval rule prefers a major third: RL Tuner's "C or E"."""
        return frozenset({self.degree_pitch_class(1), self.degree_pitch_class(3)})

    def in_key_mask(self, vocab: Vocabulary) -> np.ndarray:
        """(V,) bool: tokens in the key. NOTE_OFF and NO_EVENT count as in key, as in RL Tuner."""
        return _in_key_mask(self, vocab)

    def in_key_tokens(self, vocab: Vocabulary) -> np.ndarray:
        """The in-key token classes, ascending (C major, default vocabulary: 0, 1, 2, 4, 6, ..., 37)."""
        return np.flatnonzero(self.in_key_mask(vocab))

    def tonic_token(self, vocab: Vocabulary) -> int:
        """The token the tonic rule asks for: the tonic in MIDI 60..71 (or the nearest octave in range)."""
        candidates = [p for p in range(vocab.min_pitch, vocab.max_pitch + 1) if p % 12 == self.tonic]
        if not candidates:
            raise ValueError(f"the vocabulary's range {vocab.min_pitch}..{vocab.max_pitch} holds no {self} tonic")
        target = TONIC_OCTAVE_LOW + self.tonic
        return int(vocab.pitch_to_token(min(candidates, key=lambda p: abs(p - target))))

    def tonic_tokens(self, vocab: Vocabulary) -> np.ndarray:
        """Tokens of the tonic in every octave of the vocabulary."""
        return np.flatnonzero(self.degree_mask(vocab, (1,)))

    def degree_mask(self, vocab: Vocabulary, degrees: tuple[int, ...]) -> np.ndarray:
        """(V,) bool: pitch tokens whose pitch class is one of the given scale degrees (specials False)."""
        classes = {self.degree_pitch_class(d) for d in degrees}
        return pitch_class_mask(vocab, classes)


def pitch_class_mask(vocab: Vocabulary, pitch_classes: set[int] | frozenset[int] | tuple[int, ...]) -> np.ndarray:
    """(V,) bool: pitch tokens whose pitch class is in ``pitch_classes``; NOTE_OFF and NO_EVENT are False."""
    mask = np.zeros(vocab.size, dtype=bool)
    pitches = np.arange(vocab.min_pitch, vocab.max_pitch + 1)
    mask[NUM_SPECIAL:] = np.isin(pitches % 12, list(pitch_classes))
    return mask


@lru_cache(maxsize=256)
def _in_key_mask(key: Key, vocab: Vocabulary) -> np.ndarray:
    mask = pitch_class_mask(vocab, key.scale_pitch_classes)
    mask[NOTE_OFF] = mask[NO_EVENT] = True
    mask.flags.writeable = False
    return mask


ALL_KEYS: tuple[Key, ...] = tuple(Key(tonic, mode) for mode in ("major", "minor") for tonic in range(12))
"""The 24 major and minor keys."""
