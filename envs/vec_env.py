"""The fast path: an SB3 ``VecEnv`` that steps every melody together in numpy and evaluates the frozen
prior once per step for the whole batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from notetune.pretrained.form import FormLayout
from notetune.rewards.reward_set import RewardSet
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvStepReturn

from .composition import CompositionBatch, StepResult
from .melody_env import observation_space
from .prior import StepModel


class StepInfos(Sequence):
    """SB3's per-env info dicts, built only when somebody looks (the fast path reads arrays instead)."""

    def __init__(self, result: StepResult, terminal_obs: np.ndarray | None) -> None:
        self.result = result
        self.terminal_obs = terminal_obs

    def __len__(self) -> int:
        return len(self.result.reward)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        info: dict[str, Any] = {
            "log_prior": float(self.result.log_prior[index]),
            "reward_terms": {name: float(v[index]) for name, v in self.result.terms.items()},
        }
        if self.terminal_obs is not None:
            info["terminal_observation"] = self.terminal_obs[index]
            info["TimeLimit.truncated"] = False
        return info


class MelodyVecEnv(VecEnv):
    """``num_envs`` compositions written in lockstep; all finish together and are reset automatically.

    After each ``step``, ``last_result`` holds the batched reward terms and log p_prior of the actions,
    and ``prior_log_probs`` the prior's next-token distribution, for algorithms that read arrays.
    """

    def __init__(
        self,
        prior: StepModel,
        rewards: RewardSet,
        num_envs: int = 256,
        length: int = 32,
        log_prior_weight: float = 0.0,
        primer: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        form: FormLayout | None = None,
    ) -> None:
        self.batch = CompositionBatch(prior, rewards, num_envs, length, log_prior_weight, primer, allowed, form)
        self.length = length
        self.render_mode = None
        super().__init__(
            num_envs,
            observation_space(length, self.batch.num_actions),
            spaces.Discrete(self.batch.num_actions),
        )
        self._actions: np.ndarray | None = None
        self.last_result: StepResult | None = None
        self.last_tokens: np.ndarray | None = None

    @property
    def prior_log_probs(self) -> np.ndarray:
        return self.batch.prior_log_probs

    @property
    def rewards(self) -> RewardSet:
        return self.batch.rewards

    @property
    def primer(self) -> np.ndarray | None:
        """(P,) tokens every composition continues (the policy must be warmed on them too)."""
        return self.batch.primer

    @property
    def allowed(self) -> np.ndarray | None:
        """(length, V) bool action mask from the constraints, or None."""
        return self.batch.allowed

    @property
    def form(self) -> FormLayout | None:
        """The strict form whose returning phrases the action masks copy, or None."""
        return self.batch.form

    def action_masks(self) -> np.ndarray:
        """(num_envs, V) bool: the actions allowed now (what sb3-contrib's MaskablePPO reads)."""
        return self.batch.action_mask()

    def reset(self) -> np.ndarray:
        return self.batch.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must come first"
        result = self.batch.step(self._actions)
        self.last_result = result
        dones = np.full(self.num_envs, result.done)
        terminal_obs = None
        if result.done:
            terminal_obs = self.batch.observation()
            self.last_tokens = self.batch.tokens.copy()
            obs = self.batch.reset()
        else:
            obs = self.batch.observation()
        return obs, result.reward.astype(np.float32), dones, StepInfos(result, terminal_obs)  # type: ignore[return-value]

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name == "action_masks":  # one row per environment, as sb3-contrib's get_action_masks expects
            return list(self.action_masks()[list(self._get_indices(indices))])
        return [getattr(self, method_name)(*method_args, **method_kwargs)] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        return [None] * self.num_envs


class NullMelodyVecEnv(MelodyVecEnv):
    """A do-nothing batched environment of the same shape (zero reward, no prior, no rewards): the
    baseline that measures how much of the training time the environment itself costs."""

    primer = None
    allowed = None
    form = None

    def __init__(self, num_actions: int, num_envs: int = 256, length: int = 32) -> None:
        self.render_mode = None
        VecEnv.__init__(self, num_envs, observation_space(length, num_actions), spaces.Discrete(num_actions))
        self.length = length
        self.num_actions = num_actions
        self.tokens = np.full((num_envs, length), num_actions, dtype=np.int64)
        self.t = 0
        self._actions = None
        self.last_result = None
        self.last_tokens = None
        self._zero_log_probs = np.zeros((num_envs, num_actions))
        self._no_rewards = RewardSet([], {})

    @property
    def prior_log_probs(self) -> np.ndarray:
        return self._zero_log_probs

    @property
    def rewards(self) -> RewardSet:
        return self._no_rewards

    def action_masks(self) -> np.ndarray:
        return np.ones((self.num_envs, self.num_actions), dtype=bool)

    def _observation(self) -> np.ndarray:
        obs = np.empty((self.num_envs, self.length + 1), dtype=np.int64)
        obs[:, 0] = self.t
        obs[:, 1:] = self.tokens
        return obs

    def reset(self) -> np.ndarray:
        self.tokens.fill(self.num_actions)
        self.t = 0
        return self._observation()

    def step_wait(self) -> VecEnvStepReturn:
        actions = np.asarray(self._actions, dtype=np.int64)
        self.tokens[:, self.t] = actions
        self.t += 1
        done = self.t == self.length
        zeros = np.zeros(self.num_envs)
        self.last_result = StepResult(zeros, {}, zeros, done)
        terminal_obs = self._observation() if done else None
        if done:
            self.last_tokens = self.tokens.copy()
            obs = self.reset()
        else:
            obs = self._observation()
        return (
            obs,
            zeros.astype(np.float32),
            np.full(self.num_envs, done),
            StepInfos(self.last_result, terminal_obs),
        )  # type: ignore[return-value]
