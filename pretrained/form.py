"""Musical form: a string of phrase letters such as "AABA" or "AA'BA", laid out over a piece.

Phrases have equal length: the piece's length divided by the number of letters, or ``phrase_bars`` bars of the
meter. A letter seen before is a *return* of the first phrase with that label; a primed letter seen for the
first time (``A'``) is a *variation* of the first phrase of its base letter: its first half returns, its second
half is new. A label seen for the first time is *new* material.

Strict form is a mask over actions that depends on what was generated: at a step of a returning phrase (or
of a variation's first half) the only allowed token is the one at the same offset of the phrase it returns
to. :func:`form_allowed` gives that (B, V) mask for step ``t``; numpy only, so the environment and sampling
can both use it.

Each phrase end has a cadence (:meth:`FormLayout.cadence_degrees`): the last phrase on the tonic, a phrase
before a return on the dominant (a half cadence), any other on 1, 3 or 5. A returning phrase whose cadence may
not be its source's (the last A of AABA ends on the tonic, the first on the dominant) has a **second ending**,
as folk tunes write it: its last quarter note is its own, neither copied by a strict form nor paid for agreeing
(phrases of 6 quarters or more; shorter ones return whole).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import UserInputError
from .meter import DEFAULT_METER, Meter
from .vocab import DEFAULT_VOCABULARY

PRIMES = "'′"
_FORM = re.compile(r"^(?:[A-Za-z][" + PRIMES + r"]*)+$")


class FormError(UserInputError):
    """A form string that cannot be read, or a form that does not fit the piece."""


NEW, RETURN, VARIATION = "new", "return", "variation"
"""Roles of a phrase in a form."""
TONIC, DOMINANT, STABLE_DEGREES = (1,), (5,), (1, 3, 5)
"""Scale degrees a cadence ends on: the tonic, the dominant (a half cadence), any stable degree."""


@dataclass(frozen=True)
class Form:
    """Phrase labels in order, e.g. ("A", "A", "B", "A") or ("A", "A'", "B", "A")."""

    labels: tuple[str, ...]
    """One label per phrase: an upper-case letter and zero or more primes (written ')."""
    phrase_bars: int | None = None
    """Bars per phrase; None divides the piece evenly among the phrases."""

    def __post_init__(self) -> None:
        if not self.labels:
            raise FormError("a form needs at least one phrase letter, e.g. 'AABA'")
        for index, label in enumerate(self.labels):
            if not re.fullmatch(r"[A-Z]'*", label):
                raise FormError(f"phrase label {label!r} must be one upper-case letter and primes, e.g. A or A'")
            if label[1:] and label[0] not in self.labels[:index]:
                raise FormError(
                    f"form {self.text}: {label} varies an earlier {label[0]}, but no {label[0]} comes before it; "
                    f"start with {label[0]}"
                )
        if self.phrase_bars is not None and (isinstance(self.phrase_bars, bool) or self.phrase_bars < 1):
            raise FormError(f"phrase_bars must be a positive whole number, got {self.phrase_bars!r}")

    @classmethod
    def parse(cls, text: str | Form, phrase_bars: int | None = None) -> Form:
        """A form from "AABA", "AA'BA", "ABAC", "aaba" (letters, each optionally primed)."""
        if isinstance(text, Form):
            return text if phrase_bars is None else cls(text.labels, phrase_bars)
        cleaned = str(text).replace(" ", "")
        if not _FORM.match(cleaned):
            raise FormError(
                f"cannot read form {text!r}; write phrase letters, each optionally primed, e.g. AABA, AA'BA or ABAC"
            )
        cleaned = cleaned.replace("′", "'").upper()
        return cls(tuple(re.findall(r"[A-Z]'*", cleaned)), phrase_bars)

    @property
    def text(self) -> str:
        return "".join(self.labels)

    def __str__(self) -> str:
        return self.text

    @property
    def num_phrases(self) -> int:
        return len(self.labels)

    @cached_property
    def roles(self) -> tuple[str, ...]:
        """Per phrase: ``new``, ``return`` (label seen before) or ``variation`` (first primed label)."""
        roles = []
        for index, label in enumerate(self.labels):
            if label in self.labels[:index]:
                roles.append(RETURN)
            elif label[1:]:
                roles.append(VARIATION)
            else:
                roles.append(NEW)
        return tuple(roles)

    @cached_property
    def sources(self) -> tuple[int, ...]:
        """Per phrase: the phrase it returns to or varies (its own index for new material)."""
        sources = []
        for index, label in enumerate(self.labels):
            role = self.roles[index]
            target = label if role == RETURN else label[0] if role == VARIATION else None
            sources.append(index if target is None else self.labels.index(target))
        return tuple(sources)

    def layout(self, length: int, meter: Meter | str = DEFAULT_METER) -> FormLayout:
        """Where each phrase starts in a piece of ``length`` steps; an error if the form does not fit."""
        meter = Meter.parse(meter)
        count = self.num_phrases
        if self.phrase_bars is not None:
            phrase_steps = self.phrase_bars * meter.steps_per_bar
            if phrase_steps * count != length:
                raise FormError(
                    f"form {self.text} with {self.phrase_bars}-bar phrases of {meter} spans {phrase_steps * count} "
                    f"steps, but the piece has {length}; use --length {phrase_steps * count} or other --phrase-bars"
                )
        else:
            if length % count:
                raise FormError(
                    f"a piece of {length} steps does not divide into the {count} equal phrases of form {self.text}; "
                    f"choose a length that is a multiple of {count} or give --phrase-bars"
                )
            phrase_steps = length // count
        if phrase_steps < 2:
            raise FormError(
                f"form {self.text} leaves {phrase_steps} step per phrase in {length} steps; use fewer letters"
            )
        return FormLayout(self, length, phrase_steps)


@dataclass(frozen=True)
class FormLayout:
    """A form placed on a piece: phrase boundaries, and which earlier step each step must copy when strict."""

    form: Form
    length: int
    phrase_steps: int

    @property
    def phrase_lags(self) -> tuple[int, ...]:
        """Steps back from any step to the same place in each earlier phrase: the phrase length's multiples."""
        return tuple(self.phrase_steps * k for k in range(1, self.form.num_phrases))

    @property
    def half_steps(self) -> int:
        """Steps in a phrase's first half (a variation returns this many)."""
        return self.phrase_steps // 2

    def start(self, phrase: int) -> int:
        return phrase * self.phrase_steps

    def end(self, phrase: int) -> int:
        """Last step of ``phrase``."""
        return (phrase + 1) * self.phrase_steps - 1

    def cadence_degrees(self, phrase: int) -> tuple[int, ...]:
        """The degrees ``phrase`` should cadence on: tonic last, dominant before a return, else 1, 3 or 5."""
        roles = self.form.roles
        if phrase == len(roles) - 1:
            return TONIC
        if roles[phrase + 1] in (RETURN, VARIATION):
            return DOMINANT
        return STABLE_DEGREES

    @property
    def ending_steps(self) -> int:
        """Steps of a second ending: a quarter note, what a cadence's last note must last."""
        return DEFAULT_VOCABULARY.steps_per_quarter

    def second_ending(self, phrase: int) -> bool:
        """Whether returning ``phrase`` ends on its own: its cadence may not be the one of the phrase it returns
        to, and the phrase is long enough (6 quarters or more) that the ending leaves it mostly a return."""
        if self.form.roles[phrase] != RETURN or self.phrase_steps < 6 * self.ending_steps:
            return False
        source = self.form.sources[phrase]
        return not set(self.cadence_degrees(source)) <= set(self.cadence_degrees(phrase))

    def copied_steps(self, phrase: int) -> int:
        """Steps at the start of ``phrase`` that return its source: all but a second ending, half of a variation,
        none of new material."""
        role = self.form.roles[phrase]
        if role == NEW:
            return 0
        if role == VARIATION:
            return self.half_steps
        return self.phrase_steps - (self.ending_steps if self.second_ending(phrase) else 0)

    @cached_property
    def phrase_of_step(self) -> np.ndarray:
        """(length,) the phrase each step belongs to."""
        return np.arange(self.length) // self.phrase_steps

    @cached_property
    def copy_source(self) -> np.ndarray:
        """(length,) int: the step whose token a strict form copies to this step, −1 where it is free (new
        material, a variation's second half, a second ending)."""
        source = np.full(self.length, -1, dtype=np.int64)
        for phrase in range(self.form.num_phrases):
            copied = self.copied_steps(phrase)
            begin, origin = self.start(phrase), self.start(self.form.sources[phrase])
            source[begin : begin + copied] = np.arange(origin, origin + copied)
        source.flags.writeable = False
        return source


def form_allowed(
    tokens: np.ndarray, t: int, layout: FormLayout, vocab_size: int, allowed: np.ndarray | None = None
) -> np.ndarray:
    """(B, V) bool: the tokens a strict form allows at step ``t`` given ``tokens[:, :t]`` generated so far.

    At a copied step only the token at its source step is allowed; elsewhere ``allowed[t]`` (the static
    constraints, all True without them). Check the constraints once with :func:`check_form_constraints`.
    """
    tokens = np.asarray(tokens)
    batch = tokens.shape[0]
    source = int(layout.copy_source[t])
    if source < 0:
        row = np.ones(vocab_size, dtype=bool) if allowed is None else np.asarray(allowed[t], dtype=bool)
        return np.broadcast_to(row, (batch, vocab_size)).copy()
    mask = np.zeros((batch, vocab_size), dtype=bool)
    mask[np.arange(batch), tokens[:, source]] = True
    return mask


def form_allowed_sequences(
    tokens: np.ndarray, layout: FormLayout, vocab_size: int, allowed: np.ndarray | None = None
) -> np.ndarray:
    """(N, T, V) bool: :func:`form_allowed` at every step of complete (N, T) compositions at once.

    For scoring whole sequences under a strict form (a policy's log-probabilities, the prior's log p).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    count, length = tokens.shape
    base = np.ones((length, vocab_size), dtype=bool) if allowed is None else np.asarray(allowed[:length], dtype=bool)
    mask = np.broadcast_to(base, (count, length, vocab_size)).copy()
    copied = np.flatnonzero(layout.copy_source[:length] >= 0)
    mask[:, copied] = False
    rows = np.arange(count)[:, None]
    mask[rows, copied[None, :], tokens[:, layout.copy_source[copied]]] = True
    return mask


def check_form_constraints(layout: FormLayout, allowed: np.ndarray | None) -> None:
    """Raise :class:`FormError` when a static constraint forbids at a copied step what its source allows."""
    if allowed is None:
        return
    copied = np.flatnonzero(layout.copy_source >= 0)
    sources = layout.copy_source[copied]
    conflict = (allowed[sources] & ~allowed[copied]).any(axis=1)
    if conflict.any():
        step = int(copied[np.argmax(conflict)])
        raise FormError(
            f"strict form {layout.form.text} copies step {int(layout.copy_source[step])} to step {step}, but the "
            f"constraints allow different tokens there; drop the constraint on step {step} or the strict form"
        )


def form_violations(tokens: np.ndarray, layout: FormLayout) -> np.ndarray:
    """(N,) number of copied steps whose token differs from its source (0 everywhere = strict form holds)."""
    tokens = np.asarray(tokens)
    copied = np.flatnonzero(layout.copy_source >= 0)
    return (tokens[:, copied] != tokens[:, layout.copy_source[copied]]).sum(axis=1)
