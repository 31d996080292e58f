"""The reward API: registering, looking up, batching simple functions, weights, errors naming the cause."""

import textwrap
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from notetune.rewards import (
    RewardError,
    RewardSet,
    StatefulReward,
    StepBatch,
    UnknownRewardError,
    get_reward,
    parse_spec,
    registry,
    reward,
)

USER_MODULE = '''
import numpy as np

def resolves_to_tonic(tokens, t):
    """+1 when the last note is the tonic C4."""
    return 1.0 if t == len(tokens) - 1 and tokens[t] == 14 else 0.0

def high_notes(batch):
    return (batch.action >= 26).astype(float)
'''


@pytest.fixture(autouse=True)
def private_registry(monkeypatch):
    """Rewards registered by a test disappear after it."""
    monkeypatch.setattr(registry, "_REWARDS", dict(registry._REWARDS))


@pytest.fixture
def user_module(tmp_path, monkeypatch, request):
    name = f"user_rewards_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_write_your_own_reward_in_five_lines():
    @reward("ends_on_tonic")
    def ends_on_tonic(batch: StepBatch) -> np.ndarray:
        at_end = batch.is_last_step
        return np.where(at_end & (batch.action == batch.key.tonic_token(batch.vocab)), 1.0, 0.0)

    rewards = RewardSet.from_spec("notetune,ends_on_tonic=2", key="D minor")
    assert rewards.weights["ends_on_tonic"] == 2
    melodies = np.full((2, 32), 1)
    melodies[:, 0] = 16
    melodies[0, 31] = 16  # D4 is the D minor tonic
    assert rewards.evaluate(melodies)["ends_on_tonic"][:, 31].tolist() == [1, 0]


def test_simple_functions_are_batched_automatically():
    @reward("late_high_note")
    def late_high_note(tokens, t):
        return float(t >= 16 and tokens[-1] >= 26)

    assert get_reward("late_high_note").simple
    melodies = np.array([[26] * 32, [14] * 32])
    values = RewardSet.from_spec("late_high_note").evaluate(melodies)["late_high_note"]
    assert values.sum(axis=1).tolist() == [16, 0]


def test_simple_can_be_forced_for_other_signatures():
    @reward("anything_goes", simple=True)
    def anything_goes(*args):
        return 0.5

    rewards = RewardSet.from_spec("anything_goes", length=8)
    assert rewards.evaluate(np.zeros((3, 8), int))["anything_goes"].sum() == 12


def test_dotted_path_needs_no_registration(user_module):
    rewards = RewardSet.from_spec([f"{user_module}:resolves_to_tonic=4", f"{user_module}:high_notes"], length=8)
    assert rewards.names == ("resolves_to_tonic", "high_notes")
    assert rewards.weights == {"resolves_to_tonic": 4.0, "high_notes": 1.0}
    terms = rewards.evaluate(np.array([[14, 26, 1, 1, 1, 1, 1, 14]]))
    assert terms["resolves_to_tonic"][0].tolist() == [1, 0, 0, 0, 0, 0, 0, 1]
    assert terms["high_notes"][0].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]


def test_dotted_path_errors_say_what_is_missing(user_module):
    with pytest.raises(UnknownRewardError, match=f"has no 'resolves_to_tonc'.*did you mean '{user_module}:resolves"):
        get_reward(f"{user_module}:resolves_to_tonc")
    with pytest.raises(UnknownRewardError, match="cannot import module 'no_such_module'"):
        get_reward("no_such_module:fn")


def test_entry_points_provide_rewards_from_installed_packages(user_module, monkeypatch):
    plugin = EntryPoint(name="tonic_cadence", value=f"{user_module}:resolves_to_tonic", group="notetune.rewards")
    monkeypatch.setattr(registry, "_entry_points", lambda: [plugin])
    entry = get_reward("tonic_cadence")
    assert entry.name == "tonic_cadence" and entry.simple
    rewards = RewardSet.from_spec("tonic_cadence", length=8)
    assert rewards.evaluate(np.array([[1] * 7 + [14]]))["tonic_cadence"][0, 7] == 1
    with pytest.raises(UnknownRewardError, match="did you mean 'tonic_cadence'"):
        get_reward("tonic_cadense")


def test_unknown_names_suggest_and_list_what_is_known():
    with pytest.raises(UnknownRewardError) as error:
        RewardSet.from_spec("tonik")
    message = str(error.value)
    assert message.startswith("unknown reward 'tonik'; did you mean 'tonic'? known: key, tonic, ")
    assert "reward sets: rl_tuner, notetune" in message
    with pytest.raises(UnknownRewardError, match="did you mean 'rl_tuner'"):
        RewardSet.from_spec("rl_tunr")


def test_a_name_cannot_be_registered_twice_by_different_code():
    with pytest.raises(ValueError, match="reward 'key' is already registered by notetune.rewards.rl_tuner:key"):
        reward("key")(lambda batch: batch.zeros())


def test_spec_syntax_sets_scaling_overrides_and_weight_mapping():
    assert parse_spec("notetune, corpus_copy=0.5") == [("notetune", None), ("corpus_copy", 0.5)]
    assert RewardSet.from_spec("rl_tuner=0.5").weights["motif"] == 1.0
    assert RewardSet.from_spec("rl_tuner,key=5").weights["key"] == 5.0
    tuned = RewardSet.from_spec(["notetune"], weights={"motif": 0.5, "key": 0})
    assert tuned.weights["motif"] == 0.5 and tuned.weights["key"] == 0
    with pytest.raises(
        UnknownRewardError, match="weight given for 'motiv', which is not in this reward set; did you mean"
    ):
        RewardSet.from_spec("notetune", weights={"motiv": 1})
    with pytest.raises(ValueError, match=r"cannot read weight 'x' in 'key=x'; write NAME=WEIGHT"):
        RewardSet.from_spec("key=x")


def test_step_returns_unweighted_terms_and_total_weights_them():
    rewards = RewardSet.from_spec("key=3,tonic=0.5")
    rewards.reset(3)
    terms = rewards.step(np.array([[14], [15], [16]]), 0)
    assert terms["key"].tolist() == [0, -1, 0] and terms["tonic"].tolist() == [3, 0, 0]
    assert rewards.total(terms).tolist() == [1.5, -3, 0]


def test_step_reads_only_columns_up_to_t_and_any_integer_dtype():
    rng = np.random.default_rng(0)
    melodies = rng.integers(0, 38, size=(16, 32))
    full = RewardSet.from_spec("rl_tuner").evaluate(melodies)
    rewards = RewardSet.from_spec("rl_tuner")
    rewards.reset(16)
    buffer = np.full((16, 32), 37, dtype=np.uint8)  # future columns hold junk
    for t in range(32):
        buffer[:, t] = melodies[:, t]
        terms = rewards.step(buffer, t)
        for name in rewards.names:
            np.testing.assert_array_equal(terms[name], full[name][:, t])


def test_misuse_of_step_is_explained():
    rewards = RewardSet.from_spec("rl_tuner")
    with pytest.raises(ValueError, match=r"call reset\(2\) before stepping 2 melodies"):
        rewards.step(np.zeros((2, 32), int), 0)
    rewards.reset(2)
    with pytest.raises(ValueError, match=r"tokens at step 0 must be classes 0..37; got 0..40"):
        rewards.step(np.array([[0], [40]]), 0)
    with pytest.raises(RewardError, match=r"excessive_repetition.*follows each episode step by step.*got t = 3"):
        rewards.step(np.zeros((2, 32), int), 3)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            lambda batch: np.zeros(batch.batch_size + 1),
            r"reward 'faulty' returned shape \(3,\); expected \(2,\)",
        ),
        (lambda batch: np.array([0.0, np.nan]), r"reward 'faulty' returned nan for melody 1"),
        (lambda batch: np.array([np.inf, 0.0]), r"reward 'faulty' returned inf for melody 0"),
        (lambda batch: 1.0, r"reward 'faulty' returned shape \(\); expected \(2,\)"),
        (lambda batch: 1 / 0, r"reward 'faulty' failed at step 0: ZeroDivisionError: division by zero"),
    ],
)
def test_a_faulty_reward_is_named(returned, message):
    reward("faulty")(returned)
    rewards = RewardSet.from_spec("key,faulty")
    rewards.reset(2)
    with pytest.raises(RewardError, match=message):
        rewards.step(np.array([[14], [16]]), 0)


def test_stateful_rewards_start_fresh_every_episode():
    @reward("notes_so_far")
    class NotesSoFar(StatefulReward):
        """+1 per note already played in this episode."""

        def reset(self, batch_size):
            super().reset(batch_size)
            self.notes = np.zeros(batch_size)

        def step(self, batch):
            self.notes += batch.action >= 2
            return self.notes.copy()

    rewards = RewardSet.from_spec("notes_so_far", length=8)
    melody = np.array([[14, 1, 16, 1, 0, 18, 1, 1]])
    first = rewards.evaluate(melody)["notes_so_far"]
    second = rewards.evaluate(melody)["notes_so_far"]
    assert first[0].tolist() == [1, 1, 2, 2, 2, 3, 3, 3]
    np.testing.assert_array_equal(first, second)


def test_batch_state_is_private_per_reward_and_cleared_by_reset():
    @reward("steps_seen")
    def steps_seen(batch):
        batch.state["steps"] = batch.state.get("steps", 0) + 1
        return np.full(batch.batch_size, float(batch.state["steps"]))

    rewards = RewardSet.from_spec("steps_seen", length=8)
    assert rewards.evaluate(np.ones((1, 8), int))["steps_seen"][0, -1] == 8
    assert rewards.evaluate(np.ones((1, 8), int))["steps_seen"][0, -1] == 8


def test_python_callables_can_be_given_directly():
    def bright(batch):
        return (batch.action >= 26).astype(float)

    rewards = RewardSet.from_spec(["key", bright], weights={"bright": 0.1})
    assert rewards.names == ("key", "bright") and rewards.weights["bright"] == 0.1
