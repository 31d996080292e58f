"""Meters, lengths in bars, and form strings."""

from __future__ import annotations

import pytest
from notetune.pretrained.form import NEW, RETURN, VARIATION, Form, FormError
from notetune.pretrained.meter import Meter, MeterError, resolve_length
from notetune.pretrained.vocab import Vocabulary


def test_meters_group_sixteenths_into_bars_and_beats():
    four, three, six = (Meter.parse(text) for text in ("4/4", "3/4", "6/8"))
    assert (four.steps_per_bar, four.beat_steps, four.strong_steps) == (16, (0, 4, 8, 12), (0, 8))
    assert (three.steps_per_bar, three.beat_steps, three.strong_steps) == (12, (0, 4, 8), (0,))
    assert (six.steps_per_bar, six.beat_steps, six.steps_per_beat) == (12, (0, 6), 6)
    assert str(six) == "6/8" and Meter.parse(six) is six
    assert Meter.parse("3/4", Vocabulary(steps_per_quarter=8)).steps_per_bar == 24


@pytest.mark.parametrize("text", ["5/4", "4/3", "waltz", ""])
def test_unknown_meter_is_one_clear_line(text):
    with pytest.raises(MeterError, match=rf"^unknown meter '{text}'; choose 4/4, 3/4 or 6/8$"):
        Meter.parse(text)


def test_length_from_bars_or_steps():
    assert resolve_length() == 32
    assert resolve_length(bars=8) == 128
    assert resolve_length(bars=8, meter="6/8") == 96
    assert resolve_length(length=128, bars=8) == 128
    assert resolve_length(length=100) == 100  # steps need not fill bars unless bars are asked for
    assert resolve_length(bars=16) == 256


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bars": 17}, "bars must be a whole number from 1 to 16"),
        ({"length": 300}, r"longer than 16 bars of 4/4 \(256 steps\)"),
        ({"length": 200, "meter": "3/4"}, r"16 bars of 3/4 \(192 steps\)"),
        ({"length": 120, "bars": 8}, "is not 8 bars of 4/4"),
        ({"length": 100, "whole_bars": True}, "not a whole number of 4/4 bars"),
        ({"length": 4}, "at least 8 steps"),
    ],
)
def test_bad_lengths_name_the_fix(kwargs, message):
    with pytest.raises(MeterError, match=message):
        resolve_length(**kwargs)


def test_form_strings_with_primes():
    form = Form.parse("aa'ba")
    assert form.labels == ("A", "A'", "B", "A") and str(form) == "AA'BA"
    assert form.roles == (NEW, VARIATION, NEW, RETURN)
    assert form.sources == (0, 0, 2, 0)
    layout = form.layout(128)
    assert layout.phrase_steps == 32 and layout.half_steps == 16
    assert list(layout.copy_source[32:36]) == [0, 1, 2, 3]  # A' copies A's first half ...
    assert (layout.copy_source[48:96] == -1).all()  # ... not its second half, and B is free
    assert list(layout.copy_source[96:98]) == [0, 1]  # the last A copies all of A
    assert Form.parse("AABA", phrase_bars=4).layout(256).phrase_steps == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("AB1A", "cannot read form 'AB1A'"),
        ("", "cannot read form ''"),
        ("A'AB", "A' varies an earlier A, but no A comes before it"),
    ],
)
def test_bad_form_strings(text, message):
    with pytest.raises(FormError, match=message):
        Form.parse(text)


def test_forms_that_do_not_fit_the_length():
    with pytest.raises(FormError, match="90 steps does not divide into the 4 equal phrases of form AABA"):
        Form.parse("AABA").layout(90)
    with pytest.raises(FormError, match="spans 256 steps, but the piece has 128"):
        Form.parse("AABA", phrase_bars=4).layout(128)
    assert Form.parse("AB", phrase_bars=2).layout(48, "6/8").phrase_steps == 24
