"""Batched recurrent PPO (and A2C) over melody batches, in Stable-Baselines3's shape.

sb3-contrib's RecurrentPPO steps one environment state at a time through a generic buffer (about 2k
steps/s here). Melodies make a simpler structure possible: every environment writes its composition in
lockstep, so a rollout is exactly one (B, T) batch of compositions and the update replays the policy's
LSTM over whole sequences in one call. This class keeps SB3's ``OnPolicyAlgorithm`` API — ``learn``,
callbacks, the logger, ``num_timesteps`` — and swaps in that rollout and update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from notetune.envs.vec_env import MelodyVecEnv
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.vocab import HOLD, REST
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from .kl import KLController
from .policy import MelodyPolicy, numpy_tokens


class MelodyRollout:
    """One batch of complete compositions and what the agent saw while writing them."""

    def __init__(self, num_envs: int, length: int) -> None:
        shape = (num_envs, length)
        self.tokens = torch.zeros(shape, dtype=torch.long)
        self.log_probs = torch.zeros(shape)
        self.values = torch.zeros(shape)
        self.env_rewards = torch.zeros(shape)
        self.log_prior = torch.zeros(shape)
        self.rewards = torch.zeros(shape)
        self.advantages = torch.zeros(shape)
        self.returns = torch.zeros(shape)

    def compute_returns(self, gamma: float, gae_lambda: float) -> None:
        """GAE over each fixed-length composition (the episode ends after the last step)."""
        length = self.rewards.shape[1]
        last_advantage = torch.zeros(self.rewards.shape[0])
        for t in reversed(range(length)):
            next_value = self.values[:, t + 1] if t + 1 < length else torch.zeros_like(last_advantage)
            delta = self.rewards[:, t] + gamma * next_value - self.values[:, t]
            last_advantage = delta + gamma * gae_lambda * last_advantage
            self.advantages[:, t] = last_advantage
        self.returns = self.advantages + self.values


class MelodyPPO(OnPolicyAlgorithm):
    """PPO whose policy starts as the prior; reward = env reward − β·(log π − log p_prior) per step.

    ``kl_mode="full"`` adds that penalty (β from ``kl_controller``); ``kl_mode="none"`` leaves the
    environment's reward alone (e.g. RL Tuner's literal log p_prior + r/c form is computed by the env).
    """

    policy: MelodyPolicy

    def __init__(
        self,
        env: MelodyVecEnv,
        prior: NoteRNN,
        learning_rate: float = 1e-4,
        n_epochs: int = 4,
        batch_size: int = 64,
        gamma: float = 1.0,
        gae_lambda: float = 0.95,
        clip_range: float | None = 0.2,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 1.0,
        kl_mode: str = "full",
        kl_controller: KLController | None = None,
        target_kl: float | None = None,
        normalize_advantage: bool = True,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: str = "cpu",
        policy_kwargs: dict[str, Any] | None = None,
        _init_setup_model: bool = True,
    ) -> None:
        if kl_mode not in ("full", "none"):
            raise ValueError(f"kl_mode must be 'full' or 'none', got {kl_mode!r}")
        super().__init__(
            policy=MelodyPolicy,
            env=env,
            learning_rate=learning_rate,
            n_steps=env.length,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=False,
            sde_sample_freq=-1,
            tensorboard_log=tensorboard_log,
            # The policy reads the same primer and constraints as the environment's prior.
            policy_kwargs={
                "prior": prior,
                "primer": env.primer,
                "allowed": env.allowed,
                "form": env.form,
                **(policy_kwargs or {}),
            },
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Discrete,),
        )
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.clip_range_value = clip_range
        self.kl_mode = kl_mode
        self.kl_controller = kl_controller or KLController(beta=0.0, target=None, horizon=1.0)
        self.target_kl = target_kl
        self.normalize_advantage = normalize_advantage
        self.generator = torch.Generator()
        self.rollout: MelodyRollout | None = None
        self.last_rollout_stats: dict[str, float] = {}
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.generator.manual_seed(0 if self.seed is None else int(self.seed))
        self.policy = MelodyPolicy(
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        ).to(self.device)
        # SB3's learn() hands this buffer to collect_rollouts; ours keeps its own (B, T) rollout instead.
        self.rollout_buffer = RolloutBuffer(1, self.observation_space, self.action_space, device=self.device, n_envs=1)

    # ---------------------------------------------------------------------------------- rollout
    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        assert isinstance(env, MelodyVecEnv), "MelodyPPO steps a MelodyVecEnv"
        self.policy.set_training_mode(False)
        num_envs, length = env.num_envs, env.length
        rollout = MelodyRollout(num_envs, length)
        callback.on_rollout_start()
        last, state = self.policy.warm_state(num_envs)
        term_sums: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for t in range(length):
                logits, values, state = self.policy.step(last, state, t, rollout.tokens[:, :t])
                actions, log_probs = MelodyPolicy.sample(logits, self.generator)
                new_obs, rewards, dones, infos = env.step(numpy_tokens(actions))
                self.num_timesteps += num_envs
                result = env.last_result
                rollout.tokens[:, t] = actions
                rollout.log_probs[:, t] = log_probs
                rollout.values[:, t] = values
                rollout.env_rewards[:, t] = torch.from_numpy(np.asarray(rewards, dtype=np.float32))
                rollout.log_prior[:, t] = torch.from_numpy(result.log_prior.astype(np.float32))
                for name, values_np in result.terms.items():
                    term_sums[name] = term_sums.get(name, 0.0) + values_np
                callback.update_locals(locals())
                if not callback.on_step():
                    return False
                last = actions
        self._last_obs = new_obs  # type: ignore[assignment]
        self._last_episode_starts = dones
        kl = rollout.log_probs - rollout.log_prior
        beta = self.kl_controller.beta
        rollout.rewards = rollout.env_rewards - (beta * kl if self.kl_mode == "full" else 0.0)
        self.compute_advantages(rollout)
        self.rollout = rollout
        kl_per_composition = float(kl.sum(1).mean())
        self.kl_controller.update(kl_per_composition, num_envs)
        stats = {
            "rollout/kl_per_composition": kl_per_composition,
            "rollout/beta": beta,
            "rollout/log_prior_per_token": float(rollout.log_prior.mean()),
            "rollout/env_reward_per_composition": float(rollout.env_rewards.sum(1).mean()),
            "rollout/total_reward_per_composition": float(rollout.rewards.sum(1).mean()),
            "rollout/hold_share": float((rollout.tokens == HOLD).float().mean()),
            "rollout/rest_share": float((rollout.tokens == REST).float().mean()),
        }
        weights = env.rewards.weights
        for name, total in term_sums.items():
            stats[f"rewards/{name}/mean"] = float(np.mean(total))
            stats[f"rewards/{name}/weighted"] = float(np.mean(total)) * weights.get(name, 1.0)
        for key, value in stats.items():
            self.logger.record(key, value)
        self.last_rollout_stats = stats
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    # ----------------------------------------------------------------------------------- update
    def compute_advantages(self, rollout: MelodyRollout) -> None:
        """Fill ``rollout.advantages`` and ``rollout.returns`` (hook: critic-free algorithms replace GAE)."""
        rollout.compute_returns(self.gamma, self.gae_lambda)

    def training_advantages(self, rollout: MelodyRollout) -> torch.Tensor:
        """(B, T) advantages the update uses: the rollout's, normalised over the batch if asked."""
        advantages = rollout.advantages
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages

    def minibatch_loss(
        self, rollout: MelodyRollout, index: torch.Tensor, advantages: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss on compositions ``index`` and what to log of it (``approx_kl`` always; hook for subclasses)."""
        log_probs, entropy, values = self.policy.evaluate_sequences(rollout.tokens[index])
        log_ratio = log_probs - rollout.log_probs[index]
        ratio = log_ratio.exp()
        policy_loss, terms = clipped_surrogate(ratio, log_ratio, advantages, self.clip_range_value)
        value_loss = nn.functional.mse_loss(values, rollout.returns[index])
        entropy_mean = entropy.mean()
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy_mean
        terms.update(value_loss=value_loss.item(), entropy=entropy_mean.item())
        return loss, terms

    def train(self) -> None:
        assert self.rollout is not None
        rollout = self.rollout
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        advantages = self.training_advantages(rollout)
        num = rollout.tokens.shape[0]
        logs: dict[str, list[float]] = {"approx_kl": []}
        stop = False
        for _ in range(self.n_epochs):
            order = torch.randperm(num, generator=self.generator)
            for begin in range(0, num, self.batch_size):
                index = order[begin : begin + self.batch_size]
                loss, terms = self.minibatch_loss(rollout, index, advantages[index])
                logs["approx_kl"].append(terms.pop("approx_kl"))
                if self.target_kl is not None and logs["approx_kl"][-1] > 1.5 * self.target_kl:
                    stop = True
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                for name, value in terms.items():
                    logs.setdefault(name, []).append(value)
            if stop:
                break
        self._n_updates += self.n_epochs
        for name, values in logs.items():  # what minibatch_loss reported (no value loss without a critic)
            self.logger.record(f"train/{name}", float(np.mean(values)))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "rollout", "generator"]

    def get_state(self) -> dict[str, Any]:
        """What a resumed run needs besides the weights and optimizer."""
        return {
            "num_timesteps": self.num_timesteps,
            "n_updates": self._n_updates,
            "kl_controller": self.kl_controller.state_dict(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.num_timesteps = int(state["num_timesteps"])
        self._n_updates = int(state["n_updates"])
        self.kl_controller.load_state_dict(state["kl_controller"])

    def get_buffers(self) -> dict[str, torch.Tensor]:
        """On-policy: nothing outside the policy survives a rollout."""
        return {}

    def set_buffers(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


class MelodyA2C(MelodyPPO):
    """Advantage actor-critic on the same fast path: one full-batch gradient step per rollout, no clipping."""

    def __init__(self, env: MelodyVecEnv, prior: NoteRNN, learning_rate: float = 1e-4, **kwargs: Any) -> None:
        kwargs.setdefault("n_epochs", 1)
        kwargs.setdefault("batch_size", env.num_envs)
        kwargs.setdefault("clip_range", None)
        super().__init__(env, prior, learning_rate=learning_rate, **kwargs)


def clipped_surrogate(
    ratio: torch.Tensor, log_ratio: torch.Tensor, advantages: torch.Tensor, clip: float | None
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped policy loss −E[min(ρ·A, clip(ρ)·A)] (plain −E[ρ·A] without a clip), and what to log."""
    if clip is None:
        policy_loss = -(ratio * advantages).mean()
    else:
        policy_loss = -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
    with torch.no_grad():
        terms = {"policy_gradient_loss": policy_loss.item(), "approx_kl": float(((ratio - 1) - log_ratio).mean())}
        if clip is not None:
            terms["clip_fraction"] = float(((ratio - 1).abs() > clip).float().mean())
    return policy_loss, terms
