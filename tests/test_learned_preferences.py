"""The preferences.jsonl schema: valid pairs parsed, bad lines skipped and counted by reason."""

import json
import subprocess
import sys

import numpy as np
import pytest
from notetune.pretrained.vocab import DEFAULT_VOCABULARY
from notetune.rewards.core import UnknownRewardError
from notetune.rewards.keys import Key
from notetune.rewards.learned import LearnedReward
from notetune.rewards.listener import contour_arch, preference_probability, simulate_preferences
from notetune.rewards.preferences import PreferenceError, parse_preferences
from notetune.rewards.registry import register_reward_prefix
from notetune.rewards.reward_set import RewardSet

A = [14, 1, 16, 1, 18, 1, 1, 1]
B = [14, 1, 1, 1, 0, 1, 14, 1]


def line(**fields):
    return json.dumps({"a": A, "b": B, "winner": "a", **fields})


def test_valid_lines_become_typed_pairs_with_c_major_by_default():
    data = parse_preferences([line(), line(winner="tie", key="D minor", listener="ann", models=["x", "y"]), ""])
    assert len(data) == 2 and data.skipped == {}
    first, second = data.pairs
    assert first.key == Key.parse("C major") and first.target == 1.0 and first.line == 1
    assert second.key == Key.parse("D minor") and second.target == 0.5 and second.listener == "ann"
    assert second.extra == {"models": ["x", "y"]}
    a, b, target = data.arrays()
    assert a.shape == (2, 8) and b.dtype == np.int64 and target.tolist() == [1.0, 0.5]
    assert json.loads(second.to_json())["key"] == "D minor"  # round trip keeps the schema


def test_bad_lines_are_skipped_and_counted_by_reason():
    lines = [
        line(),
        '{"a": [14, 1], "b": ',  # truncated: malformed JSON
        json.dumps({"a": A, "winner": "a"}),  # no b: malformed
        line(winner="A"),  # unknown winner
        line(winner=None),
        json.dumps({"a": A, "b": [*B[:-1], DEFAULT_VOCABULARY.size], "winner": "b"}),  # outside the vocabulary
        json.dumps({"a": A, "b": B[:6], "winner": "b"}),  # a and b differ in length
        line(length=16),  # declared length disagrees
        line(key="H major"),
        line(winner="b"),
    ]
    data = parse_preferences(lines)
    assert len(data) == 2
    assert data.skipped == {
        "malformed": 2,
        "unknown_winner": 2,
        "out_of_vocabulary": 1,
        "wrong_length": 2,
        "unknown_key": 1,
    }
    assert data.first_skipped["unknown_winner"] == 4
    assert "skipped 2 malformed (first at line 2" in data.summary()


def test_pairs_of_a_minority_length_are_skipped_as_wrong_length():
    short = json.dumps({"a": A[:4], "b": B[:4], "winner": "a"})
    data = parse_preferences([line(), line(), short])
    assert data.length == 8 and data.skipped == {"wrong_length": 1}
    assert parse_preferences([line(), short], length=4).length == 4


def test_no_valid_pair_is_a_clear_error():
    with pytest.raises(PreferenceError, match="no valid preference pairs"):
        parse_preferences(["nonsense"]).arrays()


def test_simulated_listener_draws_from_bradley_terry_probabilities():
    assert preference_probability(np.array([1.0]), np.array([0.0]), 0.5)[0] == pytest.approx(1 / (1 + np.exp(-2)))
    assert preference_probability(np.array([1.0, 0.0]), np.array([0.0, 0.0]), 0).tolist() == [1.0, 0.5]
    arch = np.array([[14, 1, 16, 1, 18, 1, 21, 1, 21, 1, 18, 1, 16, 1, 14, 1]])
    falling = np.array([[21, 1, 19, 1, 18, 1, 16, 1, 14, 1, 12, 1, 11, 1, 9, 1]])
    assert contour_arch(arch)[0] > 0.8 > contour_arch(falling)[0]
    rng = np.random.default_rng(0)
    answers = simulate_preferences(contour_arch, arch.repeat(2000, 0), falling.repeat(2000, 0), 0.5, rng)
    assert answers.a_wins.mean() == pytest.approx(answers.p_a[0], abs=0.03)  # drawn, not hard choices
    assert 0.5 < answers.p_a[0] < 1 and answers.ceiling == pytest.approx(answers.p_a[0])


def test_rewards_stay_free_of_torch():
    code = (
        "import sys; import notetune.rewards.preferences, notetune.rewards.listener, notetune.rewards.learned; "
        "from notetune.rewards import RewardSet; RewardSet.from_spec('notetune'); "
        "assert 'torch' not in sys.modules, 'rewards imported torch'"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0


def test_a_reward_prefix_resolves_an_argument_into_a_reward():
    def constant(argument):
        def build(setup):
            return LearnedReward(lambda tokens: (np.full(len(tokens), float(argument)), np.ones(len(tokens))), 0.5)

        return build

    register_reward_prefix("test_constant", constant)
    rewards = RewardSet.from_spec("test_constant:3,test_constant:3=2", length=8)  # the same item: one term
    assert rewards.weights == {"test_constant": 2.0}
    terms = rewards.evaluate(np.array([A]))["test_constant"]
    assert terms[0].tolist() == [0.0] * 7 + [2.5]  # paid at the last step: mean 3 − 0.5 × spread 1
    with pytest.raises(UnknownRewardError, match="needs an argument after 'test_constant:'"):
        RewardSet.from_spec("test_constant:")
