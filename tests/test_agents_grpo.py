"""GRPO and RLOO: group-relative advantages, KL = 0 before the first update, and learning a toy reward."""

import numpy as np
import pytest
import torch
from notetune.agents.grpo import MelodyGRPO, group_advantages, k3_kl
from notetune.envs import MelodyVecEnv
from notetune.pretrained.sampling import sample_tokens
from notetune.rewards import RewardSet, StepBatch
from stable_baselines3.common.logger import configure


def play_d(batch: StepBatch) -> np.ndarray:
    """+1 for striking any D (pitch class 2)."""
    token = batch.action
    return ((token >= 2) & ((token - 2 + 48) % 12 == 2)).astype(np.float64)


def d_share(model, num=2000):
    tokens = sample_tokens(model, num, 8, seed=99)
    return float(np.mean((tokens >= 2) & ((tokens - 2 + 48) % 12 == 2)))


def build(prior, advantage, kl_estimator="penalty", num_envs=64, **kwargs):
    env = MelodyVecEnv(prior, RewardSet.from_spec(play_d, {"play_d": 3.0}, length=8), num_envs, 8)
    algo = MelodyGRPO(env, prior, advantage=advantage, kl_estimator=kl_estimator, seed=0, **kwargs)
    algo.set_logger(configure(None, []))
    return algo


def test_grpo_advantages_on_a_hand_made_group():
    advantages = group_advantages([1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0], group_size=4, kind="grpo")
    std = np.sqrt(5 / 3)  # sample std of 1, 2, 3, 4
    assert advantages[:4] == pytest.approx([-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std], abs=1e-6)
    assert advantages[4:] == pytest.approx([0, 0, 0, 0])  # nobody in the group did better than the others


def test_rloo_advantages_leave_one_out():
    advantages = group_advantages([1.0, 2.0, 3.0, 4.0, 0.0, 6.0], group_size=3, kind="rloo")
    # 1 − mean(2, 3) ... ; second group: 4 − mean(0, 6) = 1, 0 − 5 = −5, 6 − 2 = 4
    assert advantages == pytest.approx([1 - 2.5, 2 - 2.0, 3 - 1.5, 1.0, -5.0, 4.0])
    assert advantages.reshape(2, 3).sum(axis=1) == pytest.approx([0.0, 0.0])


def test_groups_that_do_not_divide_the_batch_are_refused(tiny_prior):
    with pytest.raises(ValueError, match=r"num_envs \(60\) must be a multiple of group_size \(8\)"):
        build(tiny_prior, "grpo", num_envs=60)
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages([1.0, 2.0], group_size=1)


def test_k3_is_zero_when_the_policy_is_the_prior_and_positive_otherwise():
    log_p = torch.log(torch.tensor([0.2, 0.5, 0.3]))
    assert k3_kl(log_p, log_p).abs().max() == 0
    assert (k3_kl(log_p, log_p.flip(0)) > 0).any()


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
@pytest.mark.parametrize("kl_estimator", ["penalty", "k3"])
def test_kl_is_zero_at_step_zero(advantage, kl_estimator, tiny_prior):
    algo = build(tiny_prior, advantage, kl_estimator)
    _, callback = algo._setup_learn(algo.env.num_envs * 8, None)
    assert algo.collect_rollouts(algo.env, callback, algo.rollout_buffer, algo.n_steps)
    assert abs(algo.last_rollout_stats["rollout/kl_per_composition"]) < 1e-4
    rollout = algo.rollout
    index = torch.arange(16)
    _, terms = algo.minibatch_loss(rollout, index, algo.training_advantages(rollout)[index])
    assert terms["approx_kl"] < 1e-6 and terms.get("clip_fraction") == 0.0
    if kl_estimator == "k3":
        assert terms["kl_k3_per_note"] < 1e-6
        # the reward does not charge the KL a second time
        assert torch.equal(rollout.rewards, rollout.env_rewards)
    # every token of a composition carries the composition's advantage
    assert torch.equal(rollout.advantages, rollout.advantages[:, :1].expand_as(rollout.advantages))


@pytest.mark.parametrize("advantage", ["grpo", "rloo"])
def test_grpo_and_rloo_learn_a_toy_reward(advantage, tiny_prior):
    algo = train(tiny_prior, advantage, "penalty", beta=0.05)
    before, after = d_share(tiny_prior), d_share(algo.policy.export_actor())
    assert after > before + 0.3, (advantage, before, after)  # measured: 0.08 -> 0.84
    assert algo.num_timesteps == 8192


@pytest.mark.parametrize("kl_estimator", ["penalty", "k3"])
def test_beta_holds_the_policy_near_the_prior_with_either_estimator(kl_estimator, tiny_prior):
    # β is reward per nat in both forms, so the same β buys about the same KL (measured: ~12.6 nats at
    # β = 0.05 and 0.05-0.16 at β = 5, for both).
    loose = train(tiny_prior, "grpo", kl_estimator, beta=0.05).last_rollout_stats["rollout/kl_per_composition"]
    tight = train(tiny_prior, "grpo", kl_estimator, beta=5.0).last_rollout_stats["rollout/kl_per_composition"]
    assert loose > 5.0 and tight < 0.5, (loose, tight)


def train(prior, advantage, kl_estimator, beta):
    algo = build(prior, advantage, kl_estimator, learning_rate=3e-3)
    algo.kl_controller.beta, algo.kl_controller.target = beta, None
    algo.learn(8192)
    return algo


def test_a_reward_that_never_varies_leaves_the_k3_term_in_reward_units(tiny_prior):
    env = MelodyVecEnv(tiny_prior, RewardSet.from_spec(lambda batch: batch.zeros(), length=8), 64, 8)
    algo = MelodyGRPO(env, tiny_prior, kl_estimator="k3", seed=0)
    algo.set_logger(configure(None, []))
    _, callback = algo._setup_learn(64 * 8, None)
    algo.collect_rollouts(algo.env, callback, algo.rollout_buffer, algo.n_steps)
    assert algo.advantage_scale == 1.0  # not 1e-8, which would make β a hundred million times stronger
    assert torch.count_nonzero(algo.rollout.advantages) == 0
