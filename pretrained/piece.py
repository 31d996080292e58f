"""The shape of what a command composes: how many steps, in which meter, under which form, how strictly.

Every command's config has the same five fields (``length``, ``bars``, ``meter``, ``form``, ``phrase_bars``,
``form_strict``); :func:`piece_from_config` turns them into one :class:`Piece`, so ``sample``, ``tune``,
``evaluate``, ``compare`` and ``listen`` check them with the same one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .form import Form, FormError, FormLayout
from .meter import DEFAULT_METER, Meter, MeterError, resolve_length
from .vocab import DEFAULT_VOCABULARY, Vocabulary

DEFAULT_PIECE_LENGTH = 32
"""Steps of a piece when neither a length nor bars are given (two 4/4 bars, as RL Tuner)."""


@dataclass
class PieceFields:
    """The fields every command's config shares for the shape of its pieces (read by :func:`piece_from_config`)."""

    length: int = DEFAULT_PIECE_LENGTH
    """Steps (16th notes) per piece; at most 16 bars (256 steps of 4/4)."""
    bars: int = 0
    """Bars per piece in --meter (at most 16); 0 = use --length."""
    meter: str = "4/4"
    """Meter of the bars: 4/4 (16 steps a bar), 3/4 or 6/8 (12 steps a bar)."""
    form: str = ""
    """Phrase form, e.g. AABA or AA'BA (equal phrases, one letter each); empty = no form."""
    phrase_bars: int = 0
    """Bars per phrase of --form; 0 = the form's letters divide the piece evenly."""
    form_strict: bool = False
    """Copy the returning phrases of --form through the action masks (policy and prior, or sampling)."""


@dataclass(frozen=True)
class Piece:
    """Steps, meter and (optionally) the form of the pieces a command writes or judges."""

    length: int = DEFAULT_PIECE_LENGTH
    meter: Meter = DEFAULT_METER
    form: Form | None = None
    strict: bool = False
    """Copy returning phrases through the action masks (needs a form)."""
    phrase_bars: int | None = None
    """Bars per phrase as given (None: the form divides the piece evenly; see :attr:`statistics_phrase_bars`)."""

    @property
    def bars(self) -> int:
        """Whole bars of the meter in the piece."""
        return self.meter.bars(self.length)

    @property
    def layout(self) -> FormLayout | None:
        """The form's phrases placed on the piece (None without a form)."""
        return None if self.form is None else self.form.layout(self.length, self.meter)

    @property
    def strict_layout(self) -> FormLayout | None:
        """The layout whose returning phrases the masks copy: only with ``strict``."""
        return self.layout if self.strict else None

    @property
    def statistics_phrase_bars(self) -> int:
        """Bars per phrase for the structure statistics: the form's phrase when it is whole bars, else the
        given ``phrase_bars``, else a quarter of the piece (8 bars: four 2-bar phrases), at least one bar."""
        bar = self.meter.steps_per_bar
        layout = self.layout
        if layout is not None and layout.phrase_steps % bar == 0:
            return layout.phrase_steps // bar
        if self.phrase_bars:
            return self.phrase_bars
        return max(1, self.bars // 4)

    def describe(self) -> str:
        """E.g. "128 steps (8 bars of 4/4), form AABA (strict)"."""
        bar = self.meter.steps_per_bar
        bars = f"{self.length // bar} bars" if self.length % bar == 0 else f"{self.length / bar:.2f} bars"
        text = f"{self.length} steps ({bars} of {self.meter})"
        if self.form is not None:
            text += f", form {self.form}" + (" (strict)" if self.strict else "")
        return text

    def settings(self) -> dict[str, Any]:
        """What a record (samples.npz, run.json, metrics.json) says about the piece."""
        return {
            "length": self.length,
            "meter": str(self.meter),
            "form": "" if self.form is None else self.form.text,
            "phrase_bars": self.phrase_bars or 0,
            "form_strict": self.strict,
        }


def make_piece(
    length: int | None = DEFAULT_PIECE_LENGTH,
    bars: int = 0,
    meter: str | Meter = "4/4",
    form: str | Form | None = "",
    phrase_bars: int = 0,
    form_strict: bool = False,
    vocab: Vocabulary = DEFAULT_VOCABULARY,
) -> Piece:
    """A checked :class:`Piece`; ``bars`` > 0 overrides ``length`` (steps). One-line errors name the fix."""
    meter = Meter.parse(meter, vocab)
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 0:
        raise MeterError(f"--bars must be a whole number of bars (0 = use --length), got {bars!r}")
    steps = resolve_length(None, bars, meter) if bars else resolve_length(length, None, meter)
    if isinstance(phrase_bars, bool) or not isinstance(phrase_bars, int) or phrase_bars < 0:
        raise FormError(
            f"--phrase-bars must be a whole number of bars (0 = the form divides the piece), got {phrase_bars!r}"
        )
    parsed = Form.parse(form, phrase_bars or None) if form else None
    if form_strict and parsed is None:
        raise FormError("--form-strict copies the returning phrases of a form; give one too, e.g. --form AABA")
    piece = Piece(steps, meter, parsed, bool(form_strict), phrase_bars or None)
    if parsed is not None:
        piece.layout  # noqa: B018  (raises FormError when the form does not fit the piece)
    return piece


def piece_from_config(config: Any, vocab: Vocabulary = DEFAULT_VOCABULARY) -> Piece:
    """The :class:`Piece` of any config with ``length`` and, optionally, ``bars``, ``meter``, ``form``,
    ``phrase_bars`` and ``form_strict`` fields (missing fields take their defaults)."""
    return make_piece(
        getattr(config, "length", DEFAULT_PIECE_LENGTH),
        getattr(config, "bars", 0),
        getattr(config, "meter", "4/4"),
        getattr(config, "form", ""),
        getattr(config, "phrase_bars", 0),
        getattr(config, "form_strict", False),
        vocab,
    )
