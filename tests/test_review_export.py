"""Audio rendering says why it fell back to sine waves instead of swallowing fluidsynth's failure."""

import logging
import sys

import numpy as np
import pretty_midi
import pytest
from notetune.pretrained import export

MELODY = np.array([14, 1, 16, 1, 18, 1, 1, 1] * 2)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(export, "_WARNED", set(), raising=False)


def test_a_failing_synth_is_logged_with_its_cause(monkeypatch, caplog):
    def failing_synth(self, *args, **kwargs):
        raise RuntimeError("soundfont could not be loaded")

    monkeypatch.setattr(export, "fluidsynth_available", lambda: True)
    monkeypatch.setattr(pretty_midi.PrettyMIDI, "fluidsynth", failing_synth)
    with caplog.at_level(logging.WARNING, logger="notetune.pretrained.export"):
        audio, renderer = export.render_audio(MELODY)
        export.render_audio(MELODY)  # the second clip with the same cause adds no line
    assert renderer == "sine" and np.abs(audio).max() > 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "RuntimeError: soundfont could not be loaded" in warnings[0].getMessage()
    assert "sine" in warnings[0].getMessage()


def test_a_missing_fluidsynth_library_is_logged(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "fluidsynth", None)  # `import fluidsynth` now raises ImportError
    with caplog.at_level(logging.WARNING, logger="notetune.pretrained.export"):
        assert export.fluidsynth_available() is False
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "ModuleNotFoundError" in warning and "libfluidsynth3" in warning


def test_a_silent_melody_falls_back_to_silence_not_nan(monkeypatch):
    monkeypatch.setattr(export, "fluidsynth_available", lambda: False)
    audio, renderer = export.render_audio(np.array([0] + [1] * 31))  # a rest held for two bars
    assert renderer == "sine" and np.isfinite(audio).all() and np.abs(audio).max() == 0
