"""Targets: reading them, refusing unknown statistics, relative bounds, and the constraint rewards they pay."""

import numpy as np
import pytest
from notetune.agents.targets import (
    Target,
    TargetError,
    composition_counts,
    constraint_features,
    denominator_scales,
    parse_targets,
    pooled_statistics,
    with_targets,
)
from notetune.envs import MelodyVecEnv
from notetune.pretrained.encoding import canonicalize
from notetune.pretrained.sampling import sample_tokens
from notetune.rewards import RewardSet, RewardSetup
from notetune.rewards.metrics import diversity_by_set
from notetune.rewards.statistics import table1_statistics

TONIC = 14  # C4 in the default vocabulary: C major's tonic token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("starts_with_tonic>=0.97", Target("starts_with_tonic", ">=", 0.97)),
        ("not_in_key <= 0.1%", Target("not_in_key", "<=", 0.001)),
        ("rest_share>=0.8x", Target("rest_share", ">=", 0.8, "ratio")),
        ("copy_rate_8gram<=1.0x", Target("copy_rate_8gram", "<=", 1.0, "ratio")),
        ("log_prior_per_token>=untuned-0.2", Target("log_prior_per_token", ">=", -0.2, "offset")),
        ("leaps_resolved≥0.98", Target("leaps_resolved", ">=", 0.98)),
    ],
)
def test_targets_are_read_and_written_back(text, expected):
    target = Target.parse(text)
    assert (target.statistic, target.sense, target.reference) == (
        expected.statistic,
        expected.sense,
        expected.reference,
    )
    assert target.value == pytest.approx(expected.value)
    assert Target.parse(str(target)) == target


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("starts_with_tonic>0.97", "use >= or <="),
        ("starts_with_tonic>=lots", "cannot read the value 'lots'"),
        ("starts_with_tonic", "write STATISTIC>=VALUE"),
    ],
)
def test_unreadable_targets_say_how_to_write_one(text, message):
    with pytest.raises(TargetError, match=message) as error:
        Target.parse(text)
    assert "\n" not in str(error.value)


def test_an_unknown_statistic_is_refused_with_did_you_mean():
    with pytest.raises(TargetError, match=r"unknown statistic 'starts_with_tonik'.*did you mean 'starts_with_tonic'"):
        parse_targets(["leaps_resolved>=0.98", "starts_with_tonik>=0.97"])
    targets = parse_targets({"starts_with_tonic": ">=0.97", "rest_share": ">=0.8x"})  # a [targets] table
    assert [t.name for t in targets] == ["target_starts_with_tonic_min", "target_rest_share_min"]


def test_a_relative_target_reads_the_untuned_baseline(tiny_prior):
    prior_tokens = sample_tokens(tiny_prior, 512, 32, seed=0)
    setup = RewardSetup()
    baseline = pooled_statistics(composition_counts(prior_tokens, ["rest_share"], setup))
    assert baseline["rest_share"] == pytest.approx(table1_statistics(prior_tokens)["rest_share"])
    target = Target.parse("rest_share>=0.8x")
    assert target.bound(baseline) == pytest.approx(0.8 * baseline["rest_share"])
    assert target.met(0.81 * baseline["rest_share"], baseline)
    assert not target.met(0.79 * baseline["rest_share"], baseline)
    with pytest.raises(TargetError, match="relative to the untuned model"):
        target.bound({})


def test_a_set_statistic_cannot_shape_the_reward():
    with pytest.raises(TargetError, match="whole set of compositions"):
        with_targets(RewardSet.from_spec("notetune"), [Target.parse("distinct_melodies>=0.999")])


def test_distinct_4grams_split_into_per_composition_counts_and_can_shape_the_reward():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 8, size=(300, 16))
    tokens[100:200] = tokens[100]  # the middle set of 100 repeats one melody
    numerator, denominator = composition_counts(tokens, ["distinct_4gram"], RewardSetup())["distinct_4gram"]
    per_set = numerator.reshape(3, 100).sum(axis=1) / denominator.reshape(3, 100).sum(axis=1)
    assert per_set == pytest.approx(diversity_by_set(canonicalize(tokens), 100)["distinct_4gram"])
    repeated = len({tuple(tokens[100, i : i + 4]) for i in range(13)})  # one melody's 4-grams, 100 times over
    assert per_set[1] == pytest.approx(repeated / 1300)
    # A composition is paid for 4-grams its set has not heard often: the repeated ones earn 1/100 each.
    assert numerator[150] == pytest.approx(repeated / 100) and numerator[:100].mean() > 5 * numerator[150]
    # A batch of 256 is cut into sets of exactly 100 (the last wraps around), as the figure is measured: the
    # share rises as sets shrink, so a remainder set of 56 would pay for diversity the evaluation never sees.
    fresh = rng.integers(0, 8, size=(256, 16))
    numerator, denominator = composition_counts(fresh, ["distinct_4gram"], RewardSetup())["distinct_4gram"]
    by_hundred = diversity_by_set(canonicalize(fresh), 100)["distinct_4gram"].mean()
    assert numerator.sum() / denominator.sum() == pytest.approx(by_hundred, abs=0.01)
    assert diversity_by_set(canonicalize(fresh), 56)["distinct_4gram"].mean() > by_hundred + 0.05
    target = Target.parse("distinct_4gram>=0.5")
    rewards = with_targets(RewardSet.from_spec("notetune", length=16), [target], multipliers={target.name: 1.0})
    paid = rewards.evaluate(tokens[:256])[target.name][:, -1]
    assert paid[100:200].max() < 0 < paid[:100].min()


def test_constraint_term_pays_the_slack_at_the_last_step_only():
    tokens = np.full((4, 32), 1)  # held notes after the first token
    tokens[:, 0] = [TONIC, TONIC, TONIC, 20]  # three of four start on the tonic
    target = Target.parse("starts_with_tonic>=0.5")
    rewards = with_targets(RewardSet.from_spec("notetune"), [target], multipliers={target.name: 2.0})
    terms = rewards.evaluate(tokens)[target.name]
    assert np.all(terms[:, :-1] == 0)
    assert terms[:, -1] == pytest.approx([0.5, 0.5, 0.5, -0.5])
    assert terms.sum() >= 0  # pooled: 75% ≥ 50%, met
    assert rewards.weights[target.name] == 2.0
    # a stricter target on the same compositions is missed, and its constraint sum says so
    strict = Target.parse("starts_with_tonic>=0.9")
    features = constraint_features(tokens, [strict, Target.parse("not_in_key<=0.01")], RewardSetup())
    assert features[:, 0].sum() < 0 and features[:, 1].sum() >= 0


def test_per_step_rates_are_scaled_to_the_statistics_units(tiny_prior):
    tokens = sample_tokens(tiny_prior, 256, 32, seed=1)
    setup = RewardSetup()
    counts = composition_counts(tokens, ["hold_share"], setup)
    scales = denominator_scales(counts)
    assert scales["hold_share"] == 32.0
    target = Target.parse("hold_share>=0.1")
    features = constraint_features(tokens, [target], setup, scales=scales)
    # the mean feature is the slack of the pooled rate: hold share − 0.1
    assert features.mean() == pytest.approx(table1_statistics(tokens)["hold_share"] - 0.1)


def test_a_log_prior_target_reads_the_environments_prior(tiny_prior):
    target = Target.parse("log_prior_per_token>=untuned-0.2")
    baseline = {"log_prior_per_token": -3.0}
    rewards = with_targets(RewardSet.from_spec("notetune", length=8), [target], {target.name: 1.0}, baseline)
    env = MelodyVecEnv(tiny_prior, rewards, num_envs=16, length=8)
    env.reset()
    log_prior = np.zeros(16)
    for t in range(8):
        _, _, _, infos = env.step(np.full(16, 2 + t))
        log_prior += env.last_result.log_prior
    assert env.last_result.terms[target.name] == pytest.approx(log_prior - (-3.2) * 8)
