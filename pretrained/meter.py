"""Meter: how many steps make a bar, where the beats fall, and how long a piece may be.

The token grid is fixed by the vocabulary (``steps_per_quarter``, 4 = 16th notes), so a meter only says how
those steps group: 4/4 has 16 steps a bar and beats every 4 steps, 3/4 has 12 steps and beats every 4,
6/8 has 12 steps and two dotted-quarter beats of 6. Pieces are at most 16 bars long (256 steps of 4/4).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserInputError
from .vocab import DEFAULT_VOCABULARY, Vocabulary

MAX_BARS = 16
"""Longest piece, in bars (256 steps of 4/4)."""
MIN_LENGTH = 8
"""Shortest piece, in steps (RL Tuner's 8-step motif "bar")."""

_METERS: dict[str, tuple[int, int, int]] = {
    # text: (numerator, denominator, eighths per beat); compound 6/8 beats in dotted quarters
    "4/4": (4, 4, 2),
    "3/4": (3, 4, 2),
    "6/8": (6, 8, 3),
}


class MeterError(UserInputError):
    """A meter, length or bar count that notetune cannot compose in."""


@dataclass(frozen=True)
class Meter:
    """A time signature on the vocabulary's step grid."""

    numerator: int = 4
    denominator: int = 4
    steps_per_quarter: int = DEFAULT_VOCABULARY.steps_per_quarter
    """Steps per quarter note of the token grid (from the vocabulary; 4 = 16th notes)."""

    def __post_init__(self) -> None:
        text = f"{self.numerator}/{self.denominator}"
        if text not in _METERS:
            raise MeterError(f"unknown meter '{text}'; choose {_choices()}")
        if self.steps_per_quarter * 4 % self.denominator:
            raise MeterError(f"meter {text} needs a grid of {self.denominator}ths; the vocabulary has too few steps")

    @classmethod
    def parse(cls, text: str | Meter, vocab: Vocabulary = DEFAULT_VOCABULARY) -> Meter:
        """A meter from "4/4", "3/4" or "6/8" (a :class:`Meter` is returned unchanged)."""
        if isinstance(text, Meter):
            return text
        cleaned = str(text).replace(" ", "")
        if cleaned not in _METERS:
            raise MeterError(f"unknown meter '{text}'; choose {_choices()}")
        numerator, denominator, _ = _METERS[cleaned]
        return cls(numerator, denominator, vocab.steps_per_quarter)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def name(self) -> str:
        """The time signature as written: "4/4", "3/4", "6/8"."""
        return str(self)

    @property
    def steps_per_bar(self) -> int:
        """16 for 4/4, 12 for 3/4 and 6/8 (with 16th-note steps)."""
        return self.numerator * self.steps_per_quarter * 4 // self.denominator

    @property
    def steps_per_beat(self) -> int:
        """4 (a quarter) in 4/4 and 3/4, 6 (a dotted quarter) in 6/8."""
        eighths = _METERS[str(self)][2]
        return eighths * self.steps_per_quarter // 2

    @property
    def beats_per_bar(self) -> int:
        return self.steps_per_bar // self.steps_per_beat

    @property
    def beat_steps(self) -> tuple[int, ...]:
        """Steps within a bar where a beat falls: (0, 4, 8, 12) in 4/4, (0, 4, 8) in 3/4, (0, 6) in 6/8."""
        return tuple(range(0, self.steps_per_bar, self.steps_per_beat))

    @property
    def strong_steps(self) -> tuple[int, ...]:
        """Strong beats within a bar: the downbeat, and in 4/4 also beat 3."""
        return (0, self.steps_per_bar // 2) if self.numerator == 4 else (0,)

    @property
    def max_length(self) -> int:
        """Steps in :data:`MAX_BARS` bars."""
        return MAX_BARS * self.steps_per_bar

    def bars(self, length: int) -> int:
        """Whole bars in ``length`` steps (a trailing partial bar is not counted)."""
        return length // self.steps_per_bar


DEFAULT_METER = Meter()
"""4/4 on 16th notes."""
METERS: dict[str, Meter] = {name: Meter.parse(name) for name in _METERS}
"""Every meter notetune composes in, by name."""


def _choices() -> str:
    names = list(_METERS)
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def resolve_length(
    length: int | None = None,
    bars: int | None = None,
    meter: Meter | str = DEFAULT_METER,
    *,
    whole_bars: bool = False,
) -> int:
    """Steps per piece from ``length`` (steps) or ``bars`` (whole bars of ``meter``); at most 16 bars.

    With neither, the default 32 steps (two 4/4 bars, as RL Tuner). With both, they must agree.
    ``whole_bars=True`` (for whatever is counted in bars: bar statistics, a form in bars) also requires
    ``length`` to be a whole number of bars.
    """
    meter = Meter.parse(meter)
    if bars is not None:
        if isinstance(bars, bool) or not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
            raise MeterError(f"--bars must be a whole number from 1 to {MAX_BARS}, got {bars!r}")
        steps = bars * meter.steps_per_bar
        if length is not None and length != steps:
            raise MeterError(
                f"length {length} is not {bars} bars of {meter} ({steps} steps); give --length or --bars, not both"
            )
        length = steps
    if length is None:
        length = 32
    if isinstance(length, bool) or not isinstance(length, int):
        raise MeterError(f"--length must be a whole number of steps, got {length!r}")
    if length < MIN_LENGTH:
        raise MeterError(f"--length must be at least {MIN_LENGTH} steps, got {length}")
    if length > meter.max_length:
        raise MeterError(
            f"length {length} is longer than {MAX_BARS} bars of {meter} ({meter.max_length} steps); "
            f"shorten it or use --bars {MAX_BARS}"
        )
    if whole_bars and length % meter.steps_per_bar:
        raise MeterError(
            f"length {length} is not a whole number of {meter} bars ({meter.steps_per_bar} steps each); "
            f"use --bars, or a multiple of {meter.steps_per_bar}"
        )
    return length
