"""Length, bars, meter and form in every command: one helper, one-line errors, the long-piece reward default."""

import dataclasses
import json

import numpy as np
import pretty_midi
import pytest
from notetune.agents.config import TuneConfig, reward_spec
from notetune.pretrained.form import Form, form_violations
from notetune.pretrained.piece import PieceFields, make_piece, piece_from_config
from notetune.scripts.cli import main
from notetune.scripts.cmd_compare import CompareConfig
from notetune.scripts.cmd_evaluate import EvaluateConfig
from notetune.scripts.cmd_listen import ListenExportConfig
from notetune.scripts.cmd_sample import SampleConfig

PIECE_FIELDS = {"length": 32, "bars": 0, "meter": "4/4", "form": "", "phrase_bars": 0, "form_strict": False}


@pytest.mark.parametrize("config", [SampleConfig, TuneConfig, EvaluateConfig, CompareConfig, ListenExportConfig])
def test_every_command_config_has_the_piece_fields_with_their_defaults(config):
    assert issubclass(config, PieceFields)
    defaults = {f.name: f.default for f in dataclasses.fields(config) if f.name in PIECE_FIELDS}
    assert defaults == PIECE_FIELDS
    assert piece_from_config(config()).length == 32


def test_bars_and_meter_become_steps():
    assert make_piece(bars=8).length == 128
    assert make_piece(bars=4, meter="3/4").length == 48 and make_piece(bars=16, meter="6/8").length == 192
    assert make_piece(length=256).bars == 16
    piece = make_piece(length=256, form="AABA", phrase_bars=4, form_strict=True)
    assert piece.layout.phrase_steps == 64 and piece.strict and piece.strict_layout == piece.layout
    assert make_piece(length=128, form="AABA").strict_layout is None
    assert piece.describe() == "256 steps (16 bars of 4/4), form AABA (strict)"
    assert make_piece(bars=8).statistics_phrase_bars == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bars", "17"], "bars must be a whole number from 1 to 16, got 17"),
        (["--length", "300"], "length 300 is longer than 16 bars of 4/4 (256 steps); shorten it or use --bars 16"),
        (["--length", "256", "--meter", "3/4"], "longer than 16 bars of 3/4 (192 steps)"),
        (["--meter", "5/4"], "unknown meter '5/4'; choose 4/4, 3/4 or 6/8"),
        (["--form-strict"], "--form-strict copies the returning phrases of a form; give one too, e.g. --form AABA"),
        (["--length", "128", "--form", "AABA", "--phrase-bars", "4"], "use --length 256 or other --phrase-bars"),
        (["--form", "A1B"], "cannot read form 'A1B'"),
    ],
)
def test_bad_pieces_are_refused_in_one_line_by_every_command(tmp_path, tiny_prior_dir, capsys, args, message):
    commands = [
        ["sample", "--model", tiny_prior_dir, "--out", str(tmp_path / "s")],
        ["evaluate", "--model", tiny_prior_dir, "--prior", "none", "--corpus", "none"],
        ["compare", tiny_prior_dir, "--out", str(tmp_path / "c"), "--prior", "none", "--corpus", "none"],
        ["listen", "export", tiny_prior_dir, tiny_prior_dir, "--out", str(tmp_path / "l")],
        ["tune", "--prior", tiny_prior_dir, "--corpus", "none", "--out", str(tmp_path / "t")],
    ]
    for command in commands:
        assert main([*command, *args]) == 2, command
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, (command, error)
    assert not any((tmp_path / name).exists() for name in "sclt")


def test_sample_writes_bars_of_the_meter_and_strict_forms(tmp_path, tiny_prior_dir, capsys):
    out = tmp_path / "waltz"
    assert (
        main(["sample", "--model", tiny_prior_dir, "--bars", "4", "--meter", "3/4", "--num", "3", "--out", str(out)])
        == 0
    )
    assert "3 melodies × 48 steps (4 bars of 3/4)" in capsys.readouterr().out
    with np.load(out / "samples.npz") as data:
        assert data["tokens"].shape == (3, 48)
    midi = pretty_midi.PrettyMIDI(str(sorted(out.glob("*.mid"))[0]))
    signature = midi.time_signature_changes[0]
    assert (signature.numerator, signature.denominator) == (3, 4)  # the file says it is a waltz
    strict = tmp_path / "aaba"
    command = ["sample", "--model", tiny_prior_dir, "--length", "64", "--form", "AABA", "--form-strict"]
    assert main([*command, "--num", "40", "--out", str(strict)]) == 0
    with np.load(strict / "samples.npz") as data:
        tokens = data["tokens"]
    assert (form_violations(tokens, Form.parse("AABA").layout(64)) == 0).all()
    written = json.loads((strict / "samples.json").read_text())
    assert (written["length"], written["form"], written["form_strict"]) == (64, "AABA", True)


def test_long_tunes_default_to_notetune_long_and_forms_to_the_form_set_unless_a_reward_is_given():
    assert reward_spec(TuneConfig(), 32) == ["notetune"]
    assert reward_spec(TuneConfig(length=128), 128) == ["notetune_long"]
    assert reward_spec(TuneConfig(length=128, form="AABA"), 128) == ["form"]  # the form's targets do the rest
    assert reward_spec(TuneConfig(length=128, reward=["notetune"], form="AABA"), 128) == ["notetune", "form"]
    assert reward_spec(TuneConfig(length=128, reward=["notetune"]), 128) == ["notetune"]
    assert reward_spec(TuneConfig(length=128, reward=["rl_tuner,form=2"], form="AABA"), 128) == ["rl_tuner,form=2"]
