"""Gymnasium environment: write a melody one 16th-note token at a time."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from notetune.rewards.reward_set import RewardSet

from .composition import CompositionBatch
from .prior import StepModel


def observation_space(length: int, num_actions: int) -> spaces.Box:
    """[step index, token_0 .. token_{L-1}] with not-yet-written steps padded with ``num_actions``.

    An integer Box rather than MultiDiscrete, so SB3 hands the token ids to the Note RNN as they are
    (MultiDiscrete observations would be one-hot encoded first).
    """
    high = np.array([length] + [num_actions] * length, dtype=np.int64)
    return spaces.Box(low=np.zeros_like(high), high=high, dtype=np.int64)


class MelodyEnv(gym.Env):
    """One composition per episode; the action is the next token.

    Reward = Σ weight·reward over the reward set (+ ``log_prior_weight``·log p_prior(action), RL Tuner's
    literal KL-control form when 1). Every term is in ``info["reward_terms"]`` and the prior's
    log-probability of the action in ``info["log_prior"]``, so an agent can add the full KL penalty.

    ``primer`` tokens warm the prior before step 0; ``allowed`` (length, V) constrains the actions, and
    :meth:`action_masks` (sb3-contrib's MaskablePPO convention) says which are allowed now. Without a
    ``prior`` the shipped one is loaded and transposed to ``key``.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        prior: StepModel | None = None,
        rewards: RewardSet | str | None = None,
        length: int = 32,
        log_prior_weight: float = 0.0,
        key: str = "C major",
        render_mode: str | None = None,
        primer: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> None:
        if prior is None:
            from notetune.pretrained.checkpoint import load_checkpoint
            from notetune.pretrained.transpose import PRIOR_KEY, transpose_to_key
            from notetune.rewards.keys import Key

            prior, prior_config = load_checkpoint(None)
            prior = transpose_to_key(prior, Key.parse(prior_config.get("key") or PRIOR_KEY), Key.parse(key))
        if rewards is None or isinstance(rewards, str):
            rewards = RewardSet.from_spec(
                rewards or "notetune",
                key=key,
                length=length,
                vocab=getattr(prior, "vocab", None) or RewardSet.from_spec("key").vocab,
            )
        self.batch = CompositionBatch(prior, rewards, 1, length, log_prior_weight, primer, allowed)
        self.length = length
        self.observation_space = observation_space(length, self.batch.num_actions)
        self.action_space = spaces.Discrete(self.batch.num_actions)
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs = self.batch.reset()[0]
        return obs, {"prior_log_probs": self.batch.prior_log_probs[0].copy()}

    def step(self, action):
        result = self.batch.step(np.array([int(action)]))
        info = {
            "log_prior": float(result.log_prior[0]),
            "reward_terms": {name: float(values[0]) for name, values in result.terms.items()},
        }
        if not result.done:
            info["prior_log_probs"] = self.batch.prior_log_probs[0].copy()
        return self.batch.observation()[0], float(result.reward[0]), result.done, False, info

    def action_masks(self) -> np.ndarray:
        """(V,) bool: the actions the constraints allow at the current step."""
        return self.batch.action_mask()[0]

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        tokens = self.batch.tokens[0, : self.batch.t]
        return " ".join({0: "-", 1: "_"}.get(int(t), str(int(t))) for t in tokens)
