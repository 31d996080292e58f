"""What a composer fixes in advance: a primer the melody continues, and constraints on every step.

Constraints become one (length, V) boolean mask ``allowed`` — which tokens may be chosen at each step —
that sampling, the tuning policy and the environment's prior all apply (the prior renormalised over the
allowed tokens). The syntax, one constraint per string::

    step:0=C4            the first step is a C4 onset (also MIDI numbers, "rest", "hold";
    step:0,16,28=60      several steps: commas and ranges such as 28-31)
    pitches=C,D,E,G,A    notes may only start on these pitch classes (or exact pitches: C4, 60)
    rhythm=x...x.x.      onsets: x = a note may start, X = a note must start, . = no new note
                         (hold or rest), _ = hold only; "|" and spaces are ignored; repeats if short

Steps count from the first generated token (after any primer). A primer is a MIDI file or a line of
items, one per 16th note: MIDI numbers or note names start notes, ``_`` holds, ``r`` rests
(``"60 _ 62 _ 64 _ _ _"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserInputError
from .vocab import NO_EVENT, NOTE_OFF, NUM_SPECIAL, Vocabulary

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE = re.compile(r"^([A-Ga-g])([#b♯♭]*)(-?\d+)?$")
HOLD_WORDS = ("_", "hold")
REST_WORDS = ("r", "rest", "-")
RHYTHM_SYMBOLS = "xX._"


class ConstraintError(UserInputError):
    """A constraint or primer cannot be read, does not fit the vocabulary, or contradicts another."""


def parse_pitch(text: str) -> tuple[int | None, int | None]:
    """(MIDI pitch, None) for "60" or "C4" (scientific: C4 = 60); (None, pitch class) for "C" or "F#"."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        pitch = int(text)
        if not 0 <= pitch <= 127:
            raise ConstraintError(f"MIDI pitch {pitch} is outside 0..127")
        return pitch, None
    match = _NOTE.match(text)
    if match is None:
        raise ConstraintError(
            f"cannot read pitch {text!r}; write a MIDI number (60), a note (C4, F#5, Bb3) or a pitch class (C, F#, Bb)"
        )
    letter, accidentals, octave = match.groups()
    pitch_class = _PITCH_CLASSES[letter.upper()] + sum(1 if a in "#♯" else -1 for a in accidentals)
    if octave is None:
        return None, pitch_class % 12
    pitch = 12 * (int(octave) + 1) + pitch_class
    if not 0 <= pitch <= 127:
        raise ConstraintError(f"note {text} (MIDI {pitch}) is outside 0..127")
    return pitch, None


def _pitch_token(pitch: int, vocab: Vocabulary, where: str) -> int:
    if not vocab.min_pitch <= pitch <= vocab.max_pitch:
        raise ConstraintError(
            f"{where}: pitch {pitch} is outside the model's range "
            f"{vocab.min_pitch}..{vocab.max_pitch}; move it by an octave"
        )
    return int(vocab.pitch_to_token(pitch))


# ------------------------------------------------------------------------------------------ constraints


@dataclass(frozen=True)
class FixedEvent:
    """The same event at given steps: a note onset (MIDI pitch), a rest or a hold."""

    text: str
    steps: tuple[int, ...]
    pitch: int | None
    """MIDI pitch of the onset, or None for a rest/hold."""
    special: int | None = None
    """NOTE_OFF or NO_EVENT when the event is a rest or a hold."""

    def mask(self, length: int, vocab: Vocabulary) -> np.ndarray:
        allowed = np.ones((length, vocab.size), dtype=bool)
        token = self.special if self.pitch is None else _pitch_token(self.pitch, vocab, self.text)
        for step in self.steps:
            if step >= length:
                raise ConstraintError(f"{self.text}: step {step} is beyond the composition (steps 0..{length - 1})")
            allowed[step] = False
            allowed[step, token] = True
        return allowed


@dataclass(frozen=True)
class PitchSet:
    """Notes may start only on these pitch classes or exact pitches; holds and rests stay allowed."""

    text: str
    pitch_classes: frozenset[int]
    pitches: frozenset[int]

    def mask(self, length: int, vocab: Vocabulary) -> np.ndarray:
        midi = np.arange(vocab.min_pitch, vocab.max_pitch + 1)
        row = np.ones(vocab.size, dtype=bool)
        row[NUM_SPECIAL:] = np.isin(midi % 12, list(self.pitch_classes)) | np.isin(midi, list(self.pitches))
        if not row[NUM_SPECIAL:].any():
            raise ConstraintError(
                f"{self.text}: none of these pitches lies in the model's range {vocab.min_pitch}..{vocab.max_pitch}"
            )
        return np.broadcast_to(row, (length, vocab.size)).copy()


@dataclass(frozen=True)
class RhythmTemplate:
    """Where notes may (x), must (X) or may not (.) start, and where the previous event is held (_)."""

    text: str
    pattern: str

    def mask(self, length: int, vocab: Vocabulary) -> np.ndarray:
        allowed = np.ones((length, vocab.size), dtype=bool)
        for step in range(length):
            symbol = self.pattern[step % len(self.pattern)]
            if symbol == "X":
                allowed[step, :NUM_SPECIAL] = False
            elif symbol == ".":
                allowed[step, NUM_SPECIAL:] = False
            elif symbol == "_":
                allowed[step] = False
                allowed[step, NO_EVENT] = True
        return allowed


Constraint = FixedEvent | PitchSet | RhythmTemplate


def _parse_steps(text: str, where: str) -> tuple[int, ...]:
    steps: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise ConstraintError(
                f"{where}: cannot read step {part.strip()!r}; write step:4=..., step:0,16=... or step:28-31=..."
            )
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise ConstraintError(f"{where}: step range {first}-{last} runs backwards")
        steps.extend(range(first, last + 1))
    return tuple(sorted(set(steps)))


def parse_constraint(text: str) -> Constraint:
    """One constraint from its text (see the module docstring for the syntax)."""
    text = text.strip()
    name, sep, value = text.partition("=")
    name, value = name.strip().lower(), value.strip()
    if not sep or not value:
        raise ConstraintError(f"cannot read constraint {text!r}; write step:0=C4, pitches=C,D,E,G,A or rhythm=x...x...")
    if name.startswith("step:"):
        steps = _parse_steps(name[len("step:") :], text)
        word = value.lower()
        if word in HOLD_WORDS:
            return FixedEvent(text, steps, None, NO_EVENT)
        if word in REST_WORDS:
            return FixedEvent(text, steps, None, NOTE_OFF)
        pitch, pitch_class = parse_pitch(value)
        if pitch is None:
            raise ConstraintError(f"{text}: a fixed note needs an octave (e.g. {value}4) or a MIDI number")
        return FixedEvent(text, steps, pitch)
    if name == "pitches":
        classes: set[int] = set()
        exact: set[int] = set()
        for item in re.split(r"[,\s]+", value):
            if item:
                pitch, pitch_class = parse_pitch(item)
                if pitch is None:
                    classes.add(int(pitch_class))  # type: ignore[arg-type]
                else:
                    exact.add(pitch)
        return PitchSet(text, frozenset(classes), frozenset(exact))
    if name == "rhythm":
        pattern = re.sub(r"[\s|]", "", value)
        unknown = sorted(set(pattern) - set(RHYTHM_SYMBOLS))
        if unknown or not pattern:
            raise ConstraintError(
                f"{text}: rhythm symbols are x (a note may start), X (must start), "
                f". (no new note), _ (hold); got {''.join(unknown) or 'nothing'}"
            )
        return RhythmTemplate(text, pattern)
    raise ConstraintError(f"unknown constraint {name!r} in {text!r}; known: step:N=NOTE, pitches=..., rhythm=...")


@dataclass(frozen=True)
class Constraints:
    """Several constraints; a token is allowed at a step when every constraint allows it."""

    items: tuple[Constraint, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str] | str | None) -> Constraints:
        if texts is None:
            return cls()
        if isinstance(texts, str):
            texts = [texts]
        return cls(tuple(parse_constraint(text) for text in texts if text.strip()))

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def texts(self) -> list[str]:
        return [item.text for item in self.items]

    def allowed(self, length: int, vocab: Vocabulary) -> np.ndarray | None:
        """(length, V) bool mask of allowed tokens, or None without constraints.

        Raises :class:`ConstraintError` naming the step and the constraints when they leave nothing allowed.
        """
        if not self.items:
            return None
        masks = [item.mask(length, vocab) for item in self.items]
        allowed = np.logical_and.reduce(masks)
        empty = np.flatnonzero(~allowed.any(axis=1))
        if empty.size:
            step = int(empty[0])
            involved = [item.text for item, mask in zip(self.items, masks, strict=True) if not mask[step].all()]
            raise ConstraintError(
                f"constraints {' and '.join(repr(t) for t in involved)} leave no token "
                f"allowed at step {step}; relax one of them"
            )
        return allowed


def violations(tokens: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """(N,) number of steps where each melody plays a token the mask forbids (0 everywhere = all hold)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if allowed is None:
        return np.zeros(len(tokens), dtype=np.int64)
    steps = np.arange(tokens.shape[1])
    return (~allowed[steps, tokens]).sum(axis=1)


# ----------------------------------------------------------------------------------------------- primer


def parse_primer(text: str | Sequence[int], vocab: Vocabulary) -> np.ndarray:
    """Primer tokens from a MIDI file path, a line such as "60 _ 62 _ 64 r", or a list of MIDI pitches."""
    if not isinstance(text, str):
        items = [str(int(p)) for p in text]
    else:
        text = text.strip()
        if not text:
            raise ConstraintError("the primer is empty; give a MIDI file or pitches such as '60 _ 62 _ 64'")
        path = Path(text)
        if path.suffix.lower() in (".mid", ".midi"):
            return read_primer_midi(path, vocab)
        items = re.split(r"[,\s]+", text)
    tokens: list[int] = []
    for item in (i for i in items if i):
        word = item.lower()
        if word in HOLD_WORDS:
            tokens.append(NO_EVENT)
        elif word in REST_WORDS:
            tokens.append(NOTE_OFF)
        else:
            try:
                pitch, _ = parse_pitch(item)
            except ConstraintError as error:
                raise ConstraintError(f"primer: {error}; items are pitches, _ (hold) or r (rest)") from None
            if pitch is None:
                raise ConstraintError(f"primer: {item!r} needs an octave, e.g. {item}4")
            tokens.append(_pitch_token(pitch, vocab, "primer"))
    if not tokens:
        raise ConstraintError("the primer is empty; give a MIDI file or pitches such as '60 _ 62 _ 64'")
    return np.array(tokens, dtype=np.int64)


def read_primer_midi(path: str | Path, vocab: Vocabulary) -> np.ndarray:
    """The melodic track of a MIDI file as primer tokens (from the first note, in the file's own octave)."""
    import pretty_midi

    from .encoding import NoteEvent, canonicalize, notes_to_tokens, pretty_midi_to_notes

    path = Path(path)
    if not path.is_file():
        raise ConstraintError(f"primer file {path} not found")
    try:
        notes = pretty_midi_to_notes(pretty_midi.PrettyMIDI(str(path)), vocab.steps_per_quarter)
    except Exception as error:  # pretty_midi raises many kinds of errors for bad files
        raise ConstraintError(
            f"primer file {path} is not a readable MIDI file ({type(error).__name__}: {error})"
        ) from error
    if not notes:
        raise ConstraintError(f"primer file {path} holds no pitched notes")
    first = min(n.start for n in notes)
    low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
    if low < vocab.min_pitch or high > vocab.max_pitch:
        raise ConstraintError(
            f"primer file {path} spans MIDI {low}..{high}, outside the model's range "
            f"{vocab.min_pitch}..{vocab.max_pitch}; transpose it by an octave"
        )
    shifted = [NoteEvent(n.start - first, n.end - first, n.pitch) for n in notes]
    return canonicalize(notes_to_tokens(shifted, vocab))


def format_primer(tokens: np.ndarray | None, vocab: Vocabulary) -> str:
    """Primer tokens in the primer syntax ("60 _ 62 r"), so a run or sample records what it continued."""
    if tokens is None:
        return ""
    words = {NOTE_OFF: "r", NO_EVENT: "_"}
    return " ".join(words.get(int(t), str(int(vocab.token_to_pitch(int(t))))) for t in tokens)


def control_inputs(
    primer: str | None,
    constraints: Sequence[str] | None,
    length: int,
    vocab: Vocabulary,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(primer tokens or None, allowed mask or None) from a config's ``primer`` and ``constraint`` fields."""
    primer_tokens = parse_primer(primer, vocab) if primer else None
    return primer_tokens, Constraints.parse(constraints).allowed(length, vocab)
