"""Every value that shapes a run is a TuneConfig field: shown by --help, written to config.json, one default."""

import dataclasses
import json

from notetune.agents.config import TuneConfig
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


def test_selection_collapse_and_kl_defaults_live_in_tune_config_only():
    # The rules have no defaults of their own: built from a TuneConfig, they carry its values.
    for rule in (SelectionRule, CollapseRule, KLController):
        required = [f for f in dataclasses.fields(rule) if f.default is dataclasses.MISSING]
        assert required, f"{rule.__name__} should take its main values from TuneConfig"
    config = TuneConfig(max_kl=3.0, collapse_distinct_melodies=0.7)
    assert SelectionRule.from_config(config).max_kl == 3.0
    assert CollapseRule.from_config(config).min_distinct_melodies == 0.7
