"""Regenerate what is not locked: locks become the constraint mask that both the model and the prior obey.

A lock fixes one token at one step. A locked note is its onset token and the holds of its length; when the step
after a locked note is not locked itself, it may not hold either, so the note keeps the length it was locked with.
Locks and constraint texts (``pitches=C,D,E,G,A``, ``rhythm=x...``; see :mod:`notetune.pretrained.constraints`)
are combined into one (length, V) mask of allowed tokens, which sampling applies to the model and
:func:`melody_log_prior` to the prior (both renormalised over what is allowed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from notetune.pretrained.constraints import (
    ConstraintError,
    Constraints,
    FixedEvent,
    parse_constraint,
    parse_primer,
)
from notetune.pretrained.meter import MAX_BARS, METERS, Meter
from notetune.pretrained.model import NoteRNN, PriorProduct
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.vocab import NO_EVENT, NOTE_OFF, NUM_SPECIAL, Vocabulary
from notetune.rewards.keys import Key

from .errors import StudioError

MAX_COUNT = 8
"""Most melodies one generate request may ask for."""
MAX_PRIMER = 256


def describe_meter(meter: Meter) -> dict:
    """What the page needs of a meter: bar length and the steps between metronome clicks."""
    return {"steps_per_bar": meter.steps_per_bar, "steps_per_beat": meter.steps_per_beat}


@dataclass(frozen=True)
class Lock:
    """This token at this step (an onset, a hold or a rest)."""

    step: int
    token: int


@dataclass(frozen=True)
class Generation:
    melodies: np.ndarray
    """(count, length) tokens."""
    log_prior: np.ndarray
    """(count,) log p of each melody under the prior in the same key and under the same mask, in nats."""


def parse_key(text: str, field: str = "key") -> Key:
    try:
        return Key.parse(text)
    except ValueError as error:
        raise StudioError(field, str(error)) from None


def parse_meter(text: str, field: str = "meter") -> Meter:
    if text not in METERS:
        raise StudioError(field, f"unknown meter {text!r}; choose from {', '.join(METERS)}")
    return METERS[text]


def check_length(length: int, meter: Meter, field: str = "length") -> int:
    """``length`` if it is 1 to 16 whole bars of ``meter``."""
    bars, rest = divmod(length, meter.steps_per_bar)
    if rest or not 1 <= bars <= MAX_BARS:
        raise StudioError(
            field,
            f"{length} steps is not 1 to {MAX_BARS} whole bars of {meter.name} ({meter.steps_per_bar} steps a bar: "
            f"{meter.steps_per_bar}, {2 * meter.steps_per_bar}, ..., {MAX_BARS * meter.steps_per_bar})",
        )
    return length


def token_name(token: int, vocab: Vocabulary) -> str:
    """ "rest", "hold" or the note ("C#4, MIDI 61") a token plays."""
    if token == NOTE_OFF:
        return "rest"
    if token == NO_EVENT:
        return "hold"
    pitch = int(vocab.token_to_pitch(token))
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1} (MIDI {pitch})"


def check_tokens(tokens: Sequence[int], vocab: Vocabulary, field: str = "tokens") -> np.ndarray:
    """``tokens`` as an int64 array, each a class of the vocabulary."""
    for i, token in enumerate(tokens):  # in Python: a token too large for int64 is named, not an overflow
        if not 0 <= int(token) < vocab.size:
            raise StudioError(
                f"{field}[{i}]", f"token {int(token)} is outside the vocabulary 0..{vocab.size - 1} (0 rest, 1 hold)"
            )
    return np.asarray(tokens, dtype=np.int64).reshape(-1)


def parse_primer_field(
    primer: str | Sequence[int] | None, vocab: Vocabulary, field: str = "primer"
) -> np.ndarray | None:
    """Primer tokens from a list of tokens or a line such as "60 _ 62 _ 64 r" (never a file on the server)."""
    if primer is None or not (primer.strip() if isinstance(primer, str) else len(primer)):
        return None
    if isinstance(primer, str):
        if primer.strip().lower().endswith((".mid", ".midi")):
            raise StudioError(field, "the studio reads no files named in a request; import the MIDI file instead")
        try:
            tokens = parse_primer(primer, vocab)
        except ConstraintError as error:
            raise StudioError(field, str(error).removeprefix(f"{field}: ")) from None
    else:
        tokens = check_tokens(primer, vocab, field)
    if len(tokens) > MAX_PRIMER:
        raise StudioError(field, f"{len(tokens)} steps is longer than the {MAX_PRIMER} a primer may have")
    return tokens


def constraint_mask(
    locks: Sequence[Lock], constraints: Sequence[str], length: int, vocab: Vocabulary
) -> np.ndarray | None:
    """(length, V) allowed tokens under the locks and the constraint texts; None when there are neither.

    Raises :class:`StudioError` naming ``locked[i]`` or ``constraints[i]``: a step or token out of range, two
    tokens locked at one step, a locked token a constraint forbids, constraints that leave a step empty.
    """
    parsed = []
    for i, text in enumerate(constraints):
        name = text.partition("=")[0].strip().lower()
        if name.startswith("step:"):  # checked before parsing, which lists every step of a range
            beyond = [int(n) for n in re.findall(r"\d+", name) if int(n) >= length]
            if beyond:
                raise StudioError(f"constraints[{i}]", f"step {beyond[0]} is beyond the melody (steps 0..{length - 1})")
        try:
            parsed.append(parse_constraint(text))
        except ConstraintError as error:
            raise StudioError(f"constraints[{i}]", str(error)) from None
    try:
        free = Constraints(tuple(parsed)).allowed(length, vocab)
    except ConstraintError as error:
        raise StudioError("constraints", str(error)) from None
    by_step: dict[int, tuple[int, int]] = {}  # step: (index of the lock, token)
    for i, lock in enumerate(locks):
        if not 0 <= lock.step < length:
            raise StudioError(f"locked[{i}].step", f"step {lock.step} is outside the melody (steps 0..{length - 1})")
        if not 0 <= lock.token < vocab.size:
            raise StudioError(
                f"locked[{i}].token",
                f"token {lock.token} is outside the vocabulary 0..{vocab.size - 1} (0 rest, 1 hold)",
            )
        if lock.step in by_step and by_step[lock.step][1] != lock.token:
            first, token = by_step[lock.step]
            raise StudioError(
                f"locked[{i}]",
                f"step {lock.step} is locked to {token_name(lock.token, vocab)} here and to "
                f"{token_name(token, vocab)} by locked[{first}]; keep one of them",
            )
        if free is not None and not free[lock.step, lock.token]:
            culprits = [c.text for c in parsed if not c.mask(length, vocab)[lock.step, lock.token]]
            raise StudioError(
                f"locked[{i}].token",
                f"{token_name(lock.token, vocab)} at step {lock.step} is forbidden by constraint "
                f"{' and '.join(repr(c) for c in culprits)}; unlock it or relax the constraint",
            )
        by_step.setdefault(lock.step, (i, lock.token))
    if not by_step:
        return free
    # One fixed event per locked token, built and combined exactly as `--constraint step:N=...` would be.
    steps_by_token: dict[int, list[int]] = {}
    for step, (_, token) in sorted(by_step.items()):
        steps_by_token.setdefault(token, []).append(step)
    events = [
        FixedEvent(
            f"locked {token_name(token, vocab)} at steps {','.join(map(str, steps))}",
            tuple(steps),
            int(vocab.token_to_pitch(token)) if token >= NUM_SPECIAL else None,
            None if token >= NUM_SPECIAL else token,
        )
        for token, steps in steps_by_token.items()
    ]
    try:
        allowed = Constraints((*parsed, *events)).allowed(length, vocab)
    except ConstraintError as error:
        raise StudioError("locked", str(error)) from None
    assert allowed is not None
    for step in _locked_note_ends({step: token for step, (_, token) in by_step.items()}, length):
        allowed[step, NO_EVENT] = False
        if not allowed[step].any():
            raise StudioError(
                "locked",
                f"the locked note before step {step} must end there, but the constraints allow only a hold at "
                f"step {step}; lock step {step} too or relax the rhythm",
            )
    return allowed


def _locked_note_ends(locked: dict[int, int], length: int) -> list[int]:
    """Unlocked steps right after a locked run that ends inside a locked note (its onset locked too)."""
    ends, sounding = [], False
    for step in range(length):
        token = locked.get(step)
        if token is None:
            if sounding:
                ends.append(step)
            sounding = False
        elif token == NOTE_OFF:
            sounding = False
        elif token >= NUM_SPECIAL:
            sounding = True
        elif step == 0 or (step - 1) not in locked:
            sounding = False  # a locked hold whose onset is free: its note may be any length
    return ends


def melody_log_prior(
    prior: NoteRNN | PriorProduct,
    tokens: np.ndarray,
    allowed: np.ndarray | None = None,
    primer: np.ndarray | None = None,
) -> np.ndarray:
    """(N,) log p of each melody under the prior (after ``primer``, renormalised over ``allowed``), in nats."""
    tokens = np.atleast_2d(np.asarray(tokens, dtype=np.int64))
    return token_log_probs(prior, tokens, primer=primer, allowed=allowed).sum(axis=1)


def generate(
    model: NoteRNN | PriorProduct,
    prior: NoteRNN | PriorProduct,
    length: int,
    allowed: np.ndarray | None = None,
    primer: np.ndarray | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    count: int = 1,
) -> Generation:
    """``count`` melodies from ``model`` under the mask, and their log p under ``prior`` with the same mask."""
    melodies = sample_tokens(model, count, length, temperature, seed, primer=primer, allowed=allowed)
    return Generation(melodies, melody_log_prior(prior, melodies, allowed, primer))
