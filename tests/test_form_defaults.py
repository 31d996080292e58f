"""What `notetune tune --form AABA` does by default: the form set alone, the form's targets (returns, contrasts,
a tonic ending, key, holds, rests, variety in the form), twice the KL budget; and runs saved before keep theirs."""

import dataclasses
import json

import pytest
from notetune.agents.config import FORM_TARGETS, TuneConfig, reward_spec, with_length_defaults
from notetune.agents.run import TuneRun, load_run
from notetune.agents.selection import DISTINCT_4GRAM_IN_FORM
from notetune.agents.target_run import RunTargets
from notetune.agents.targets import Target
from tuning import tiny_config


def target_names(**fields) -> list[str]:
    return [str(t) for t in RunTargets.from_config(TuneConfig(**fields), [], has_corpus=False).targets]


def test_a_soft_form_run_meets_the_form_targets_unless_told_otherwise():
    assert target_names(form="AABA") == [str(Target.parse(text)) for text in FORM_TARGETS]
    assert target_names() == [] and target_names(form="AABA", form_strict=True) == []  # the masks copy already
    assert target_names(form="AABA", form_target=["none"]) == []
    replaced = target_names(form="AABA", target=["ends_on_tonic>=0.5"])
    assert replaced[0] == "ends_on_tonic>=0.5" and "ends_on_tonic>=0.92" not in replaced


def test_a_soft_form_doubles_the_kl_budget_adds_an_entropy_bonus_and_trains_the_form_set_alone():
    free, soft = with_length_defaults(TuneConfig(), 128), with_length_defaults(TuneConfig(form="AABA"), 128)
    strict = with_length_defaults(TuneConfig(form="AABA", form_strict=True), 128)
    assert (free.kl_target, free.max_kl) == (16.0, 32.0) and (soft.kl_target, soft.max_kl, soft.alarm_kl) == (
        32,
        64,
        64,
    )
    assert strict.kl_target == 16.0
    assert (free.ent_coef, soft.ent_coef, strict.ent_coef) == (0.0, 0.01, 0.0)
    assert reward_spec(soft, 128) == ["form"] and reward_spec(free, 128) == ["notetune_long"]


def test_a_relative_distinct_4gram_target_reads_the_untuned_figure_in_the_form():
    baseline = {"distinct_4gram": 0.12, DISTINCT_4GRAM_IN_FORM: 0.088}
    assert Target.parse("distinct_4gram>=0.85x").bound(baseline) == pytest.approx(0.85 * 0.088)
    assert Target.parse("distinct_4gram>=0.85x").bound({"distinct_4gram": 0.12}) == pytest.approx(0.85 * 0.12)


def test_a_form_run_saved_before_the_form_defaults_resumes_with_the_notetune_rules(
    tmp_path, tiny_prior_dir, tiny_corpus_path
):
    out = tmp_path / "old"
    assert (
        "target_ends_on_tonic_min"
        in TuneRun(tiny_config(tmp_path / "new", tiny_prior_dir, "none", form="AABA", length=32)).rewards.weights
    )
    # A run as it was before: the default spec meant the notetune rules plus the form set, and no form targets.
    settings = dict(length=32, form="AABA", steps=2048, reward=["notetune"], form_target=["none"])
    config = tiny_config(out, tiny_prior_dir, tiny_corpus_path, **settings)
    TuneRun(dataclasses.replace(config, eval_every=2048, checkpoint_every=2048)).run()
    saved = json.loads((out / "config.json").read_text())
    del saved["form_target"]  # as config.json was written before the field existed, with the default spec
    (out / "config.json").write_text(json.dumps({**saved, "reward": []}))
    resumed = load_run(out)
    assert resumed.reward_spec == ["notetune", "form"] and resumed.config.form_target == []
    assert not any(name.startswith("target_ends_on_tonic") for name in resumed.rewards.weights)
