"""MelodyEnv and MelodyVecEnv: the Gymnasium and SB3 contracts, rewards in info, determinism."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from notetune.envs import MelodyEnv, MelodyVecEnv
from notetune.rewards import RewardSet
from stable_baselines3.common.env_checker import check_env as sb3_check_env


@pytest.fixture
def env(tiny_prior):
    return MelodyEnv(tiny_prior, "notetune")


def test_env_passes_gymnasium_and_sb3_checkers(env):
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


def test_env_is_registered(tiny_prior):
    env = gym.make("notetune/Melody-v0", prior=tiny_prior)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (33,) and obs[0] == 0 and (obs[1:] == 38).all()


def test_episode_is_one_composition_with_every_term_in_info(env):
    obs, info = env.reset(seed=1)
    assert np.isclose(np.exp(info["prior_log_probs"]).sum(), 1.0)
    total, steps, done = 0.0, 0, False
    melody = [14, 1, 1, 1, 16, 1, 18, 1] * 4
    for action in melody:
        obs, reward, done, truncated, info = env.step(action)
        steps += 1
        weighted = sum(env.batch.rewards.weights[n] * v for n, v in info["reward_terms"].items())
        assert np.isclose(reward, weighted)
        assert info["log_prior"] <= 0
        total += reward
    assert done and steps == 32 and obs[0] == 32 and obs[1:].tolist() == melody
    assert set(info["reward_terms"]) == set(env.batch.rewards.names)


def test_rl_tuner_literal_reward_adds_log_prior(tiny_prior):
    env = MelodyEnv(tiny_prior, "rl_tuner", log_prior_weight=1.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(14)
    assert np.isclose(reward, info["log_prior"] + sum(2.0 * v for v in info["reward_terms"].values()))


def test_same_seed_same_episode(env):
    def run(seed):
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        return [env.step(int(rng.integers(38)))[1] for _ in range(32)]

    assert run(3) == run(3)


def test_vec_env_steps_all_melodies_together_and_matches_single_env(tiny_prior):
    vec = MelodyVecEnv(tiny_prior, RewardSet.from_spec("notetune"), num_envs=4, length=32)
    single = MelodyEnv(tiny_prior, "notetune")
    obs = vec.reset()
    single.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 38, size=(32, 4))
    for t in range(32):
        obs, rewards, dones, infos = vec.step(actions[t])
        _, single_reward, _, _, info = single.step(int(actions[t, 0]))
        assert np.isclose(rewards[0], single_reward, atol=1e-4)
        assert np.isclose(infos[0]["log_prior"], info["log_prior"], atol=1e-6)
    assert dones.all() and "terminal_observation" in infos[2]
    assert np.array_equal(vec.last_tokens, actions.T)
    assert (obs[:, 0] == 0).all()  # reset automatically for the next compositions


def test_env_refuses_actions_outside_the_vocabulary(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions must lie in 0..37"):
        env.step(40)
