"""The token vocabulary: one token per 16th note (RL Tuner's encoding).

Token 0 is NOTE_OFF (a rest starts), token 1 is NO_EVENT (the previous event is held),
tokens 2.. are MIDI pitches ``min_pitch..max_pitch``. The default range 48..83 gives RL Tuner's
38 classes, where class 14 is C4 (MIDI 60). This module imports neither torch nor music21.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import UserInputError

NOTE_OFF = 0
NO_EVENT = 1
NUM_SPECIAL = 2

REST = NOTE_OFF
HOLD = NO_EVENT


@dataclass(frozen=True)
class Vocabulary:
    """Pitch range and time grid of a token sequence; saved with every checkpoint."""

    min_pitch: int = 48
    """Lowest MIDI pitch (token 2)."""
    max_pitch: int = 83
    """Highest MIDI pitch (the last token)."""
    steps_per_quarter: int = 4
    """Time steps per quarter note (4 = 16th notes)."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_pitch <= self.max_pitch <= 127:
            raise UserInputError(
                f"pitch range {self.min_pitch}..{self.max_pitch} must lie within 0..127, lowest first "
                "(--min-pitch ≤ --max-pitch)"
            )
        if self.steps_per_quarter < 1:
            raise UserInputError("steps_per_quarter must be at least 1")

    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def size(self) -> int:
        """Number of token classes (38 for the default range)."""
        return NUM_SPECIAL + self.num_pitches

    def pitch_to_token(self, pitch: int | np.ndarray) -> int | np.ndarray:
        return pitch - self.min_pitch + NUM_SPECIAL

    def token_to_pitch(self, token: int | np.ndarray) -> int | np.ndarray:
        return token - NUM_SPECIAL + self.min_pitch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        unknown = set(data) - {"min_pitch", "max_pitch", "steps_per_quarter"}
        if unknown:
            raise UserInputError(f"unknown vocabulary fields {sorted(unknown)}")
        return cls(**data)


DEFAULT_VOCABULARY = Vocabulary()


def canonicalize(tokens: np.ndarray) -> np.ndarray:
    """The canonical spelling of a melody: silence is one NOTE_OFF followed by holds.

    A leading hold becomes NOTE_OFF and a NOTE_OFF during silence becomes a hold; both spellings sound
    the same, and MIDI files only keep the canonical one. Works on (..., T) arrays.
    """
    tokens = np.array(tokens, dtype=np.int64, copy=True)
    is_pitch = tokens >= NUM_SPECIAL
    is_rest = tokens == NOTE_OFF
    # Index of the last non-hold event at or before each step (-1 if none yet).
    steps = np.arange(tokens.shape[-1])
    event_index = np.where(tokens != NO_EVENT, steps, -1)
    last_event = np.maximum.accumulate(event_index, axis=-1)
    previous = np.concatenate([np.full(tokens.shape[:-1] + (1,), -1), last_event[..., :-1]], axis=-1)
    prev_is_pitch = np.where(previous >= 0, np.take_along_axis(is_pitch, np.maximum(previous, 0), -1), False)
    silent_before = ~prev_is_pitch
    tokens[is_rest & silent_before & (steps > 0)] = NO_EVENT
    tokens[..., 0] = np.where(tokens[..., 0] == NO_EVENT, NOTE_OFF, tokens[..., 0])
    return tokens
