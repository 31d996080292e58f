"""Critic-free policy gradients on the batched melody environment: GRPO and RLOO.

Both score whole compositions. The ``num_envs`` compositions of a rollout form groups of ``group_size``
consecutive ones written from the same primer (the environment's, or none), and each composition's advantage
is its sequence return relative to its group — GRPO (Shao et al. 2024): ``(R − mean) / (std + eps)``;
RLOO (Ahmadian et al. 2024): ``R − mean of the other k − 1``. Every token of a composition gets that
advantage; no value head is trained or read.

Everything else is :class:`~notetune.agents.ppo.MelodyPPO`'s: the lockstep rollout, the replay of the LSTM
over whole sequences, the clipped ratio objective, β's adaptation and the checkpoint state. The KL to the
prior is either charged in the reward (``kl_estimator="penalty"``: −β·(log π − log p_prior) per step, as PPO)
or added to the loss (``"k3"``: β·E[p/π − log(p/π) − 1] per token, DeepSeek's estimator), scaled into the
units of the advantages so that β means the same thing in both: reward per nat of KL per composition.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from notetune.envs.vec_env import MelodyVecEnv
from notetune.pretrained.model import NoteRNN

from .ppo import MelodyPPO, MelodyRollout, clipped_surrogate

ADVANTAGE_KINDS = ("grpo", "rloo")
KL_ESTIMATORS = ("penalty", "k3")
EPSILON = 1e-8
MIN_SCALE = 1e-6
"""Below this spread of the returns, the advantages are all ~0 and the k3 term is not rescaled."""


def group_advantages(returns: np.ndarray, group_size: int, kind: str = "grpo", eps: float = EPSILON) -> np.ndarray:
    """Per-composition advantages relative to the group: (B,) returns in groups of ``group_size`` consecutive ones.

    ``grpo``: (R − group mean) / (group std + eps), the std with Bessel's correction as TRL computes it;
    ``rloo``: R − mean of the other k − 1 returns of the group (= k/(k−1) · (R − group mean)).
    A group whose returns are all equal gets advantage 0.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if kind not in ADVANTAGE_KINDS:
        raise ValueError(f"unknown advantage kind {kind!r}; choose from {', '.join(ADVANTAGE_KINDS)}")
    check_group_size(len(returns), group_size)
    groups = returns.reshape(-1, group_size)
    mean = groups.mean(axis=1, keepdims=True)
    if kind == "grpo":
        advantages = (groups - mean) / (groups.std(axis=1, ddof=1, keepdims=True) + eps)
    else:
        advantages = groups - (groups.sum(axis=1, keepdims=True) - groups) / (group_size - 1)
    return advantages.reshape(-1)


def check_group_size(num_envs: int, group_size: int) -> None:
    """Refuse groups that cannot be formed, naming the fix."""
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 (a group is compared with itself), got {group_size}")
    if num_envs % group_size:
        raise ValueError(
            f"num_envs ({num_envs}) must be a multiple of group_size ({group_size}); "
            f"e.g. --num-envs {max(group_size, num_envs // group_size * group_size)}"
        )


def k3_kl(log_probs: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(π‖prior) on tokens sampled from π: p/π − log(p/π) − 1 (≥ 0, 0 when π = p)."""
    log_ratio = log_prior - log_probs
    return log_ratio.exp() - log_ratio - 1.0


class MelodyGRPO(MelodyPPO):
    """GRPO (``advantage="grpo"``) or RLOO (``"rloo"``) with MelodyPPO's rollout, update loop and KL control.

    ``clip_range`` clips the ratio as in PPO (None: the plain ratio-weighted policy gradient); ``n_epochs`` and
    ``batch_size`` (in compositions) are PPO's. Advantages are per composition, undiscounted (``gamma`` is not
    read). RLOO's advantages are divided by their batch std when ``normalize_advantage`` (the default, as PPO).
    """

    def __init__(
        self,
        env: MelodyVecEnv,
        prior: NoteRNN,
        group_size: int = 8,
        advantage: Literal["grpo", "rloo"] = "grpo",
        kl_estimator: Literal["penalty", "k3"] = "penalty",
        kl_mode: str = "full",
        **kwargs: Any,
    ) -> None:
        if advantage not in ADVANTAGE_KINDS:
            raise ValueError(f"unknown advantage {advantage!r}; choose from {', '.join(ADVANTAGE_KINDS)}")
        if kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"unknown kl_estimator {kl_estimator!r}; choose from {', '.join(KL_ESTIMATORS)}")
        check_group_size(env.num_envs, group_size)
        self.group_size = group_size
        self.advantage = advantage
        self.kl_estimator = kl_estimator
        self.advantage_scale = 1.0
        """Reward units per unit of advantage in the last rollout (the k3 term is divided by it)."""
        # k3 charges the KL in the loss, so the reward must not charge it again.
        super().__init__(env, prior, kl_mode="none" if kl_estimator == "k3" else kl_mode, **kwargs)

    def compute_advantages(self, rollout: MelodyRollout) -> None:
        returns = rollout.rewards.sum(1).double().numpy()
        advantages = group_advantages(returns, self.group_size, self.advantage)
        if self.advantage == "grpo":
            scale = float(returns.reshape(-1, self.group_size).std(axis=1, ddof=1).mean())
        else:
            scale = float(advantages.std()) if self.normalize_advantage else 1.0
        # Returns that do not vary carry no signal (advantages 0); the k3 term then keeps reward units.
        self.advantage_scale = scale if scale > MIN_SCALE else 1.0
        if self.advantage == "rloo":
            advantages = advantages / self.advantage_scale
        length = rollout.rewards.shape[1]
        rollout.advantages = torch.from_numpy(advantages).float()[:, None].expand(-1, length)
        rollout.returns = torch.from_numpy(returns).float()[:, None].expand(-1, length)
        self.logger.record("rollout/advantage_scale", self.advantage_scale)

    def training_advantages(self, rollout: MelodyRollout) -> torch.Tensor:
        return rollout.advantages  # already relative to the group (and normalised for RLOO)

    def minibatch_loss(
        self, rollout: MelodyRollout, index: torch.Tensor, advantages: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        log_probs, entropy, _ = self.policy.evaluate_sequences(rollout.tokens[index])
        log_ratio = log_probs - rollout.log_probs[index]
        policy_loss, terms = clipped_surrogate(log_ratio.exp(), log_ratio, advantages, self.clip_range_value)
        entropy_mean = entropy.mean()
        loss = policy_loss - self.ent_coef * entropy_mean
        terms["entropy"] = entropy_mean.item()
        if self.kl_estimator == "k3":
            # Surrogate and k3 are both per-token means; the advantages were divided by advantage_scale, so
            # dividing β by it too makes β trade reward against KL exactly as in the penalty form.
            kl = k3_kl(log_probs, rollout.log_prior[index]).mean()
            loss = loss + self.kl_controller.beta / self.advantage_scale * kl
            terms["kl_k3_per_note"] = kl.item()
        return loss, terms
