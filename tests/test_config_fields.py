"""Every value that shapes a run is a TuneConfig field: shown by --help, written to config.json, one default."""

import dataclasses
import json

from notetune.agents.config import TuneConfig, with_length_defaults
from notetune.agents.kl import KLController
from notetune.agents.run import TuneRun
from notetune.agents.selection import CollapseRule, SelectionRule
from notetune.scripts.cli import build_parser
from tuning import tiny_config


def test_every_tune_field_has_a_flag_with_its_docstring(capsys):
    parser, _ = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["tune"].format_help()
    for field in dataclasses.fields(TuneConfig):
        assert f"--{field.name.replace('_', '-')}" in help_text, field.name


def test_config_json_holds_every_field(tmp_path, tiny_prior_dir, tiny_corpus_path):
    run = TuneRun(tiny_config(tmp_path / "run", tiny_prior_dir, tiny_corpus_path, steps=2048, eval_every=2048))
    run.run()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(saved) == {field.name for field in dataclasses.fields(TuneConfig)}
    for name in ("eval_seed", "confirm_seed", "collapse_distinct_melodies", "value_hidden", "target_update_interval"):
        assert name in saved
    # The length-scaled defaults are saved filled in (8-step pieces: 2,048 steps = 256 compositions a minibatch,
    # β's horizon 16,384 steps, the alarm at 8 nats per 32 steps); the tiny run's explicit values are kept.
    assert (saved["batch_size"], saved["kl_horizon"], saved["alarm_kl"]) == (256, 2048.0, 2.0)
    assert (saved["max_kl"], saved["kl_target"]) == (100.0, 0.0)


def test_kl_settings_minibatch_and_horizon_scale_with_the_length():
    two_bars, eight_bars = with_length_defaults(TuneConfig(), 32), with_length_defaults(TuneConfig(), 128)
    settings = ("kl_target", "max_kl", "alarm_kl", "kl_horizon", "batch_size", "confirm_size")
    assert [getattr(two_bars, name) for name in settings] == [4.0, 8.0, 8.0, 512.0, 64, 10_000]  # RL Tuner length
    assert [getattr(eight_bars, name) for name in settings] == [16.0, 32.0, 32.0, 128.0, 16, 2_500]
    assert with_length_defaults(TuneConfig(), 256).confirm_size == 2_000  # as the whole-tunes targets are measured
    assert with_length_defaults(TuneConfig(confirm_size=0), 128).confirm_size == 0
    assert (two_bars.prior, eight_bars.prior) == ("default", "lookback")  # 'auto': the prior that remembers
    assert with_length_defaults(TuneConfig(), 256).prior == "lookback128"  # ... as far back as a 16-bar return
    assert [with_length_defaults(TuneConfig(), n).phrase_gate for n in (128, 256)] == [False, True]
    assert (two_bars.position_bias, eight_bars.position_bias) == (False, True)
    assert with_length_defaults(TuneConfig(algo="dqn"), 128).position_bias is False
    assert with_length_defaults(TuneConfig(prior="default"), 128).prior == "default"
    assert with_length_defaults(TuneConfig(algo="dqn"), 128).batch_size == 64  # transitions, not compositions
    given = with_length_defaults(TuneConfig(kl_target=2.0, batch_size=8, max_kl=5.0), 128)
    assert (given.kl_target, given.batch_size, given.max_kl, given.alarm_kl) == (2.0, 8, 5.0, 32.0)


def test_selection_collapse_and_kl_defaults_live_in_tune_config_only():
    # The rules have no defaults of their own: built from a TuneConfig, they carry its values.
    for rule in (SelectionRule, CollapseRule, KLController):
        required = [f for f in dataclasses.fields(rule) if f.default is dataclasses.MISSING]
        assert required, f"{rule.__name__} should take its main values from TuneConfig"
    config = with_length_defaults(TuneConfig(max_kl=3.0, collapse_distinct_melodies=0.7), 32)
    assert SelectionRule.from_config(config).max_kl == 3.0
    assert CollapseRule.from_config(config).min_distinct_melodies == 0.7
