"""RL Tuner's value-based algorithms on Stable-Baselines3's DQN: Q-learning (``dqn``), Ψ-learning
(``psi``) and G-learning (``g``). The Q-network is a copy of the Note RNN whose logits are the Q-values,
as in RL Tuner; they differ only in the value of the next state:

- dqn: max_a' Q_target(s', a')                        (reward = log p_prior(a|s) + r_MT/c)
- psi: log Σ_a' exp Q_target(s', a')                   (reward = log p_prior(a|s) + r_MT/c)
- g:   log Σ_a' p_prior(a'|s') exp Q_target(s', a')    (reward = r_MT/c; acts by argmax Q + log p_prior)
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from notetune.envs.vec_env import MelodyVecEnv
from notetune.pretrained.lookback import LookbackLSTM, with_output_layer
from notetune.pretrained.model import NoteModel, NoteRNN
from notetune.rewards.reward_set import RewardSet
from stable_baselines3 import DQN
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
"""The arrays of SB3's ReplayBuffer that a checkpoint keeps."""


def _prefix(model: NoteModel, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs: the start token and the composition so far, the step t) of rows [t, token_0..token_{L-1}]."""
    observation = observation.long()
    length = observation.shape[1] - 1
    steps = observation[:, 0].clamp(max=length - 1)
    tokens = observation[:, 1:].clamp(max=model.start_token - 1)  # padding after t is never read
    start = torch.full((len(tokens), 1), model.start_token, dtype=torch.long, device=tokens.device)
    return torch.cat([start, tokens[:, :-1]], dim=1), steps


def prefix_features(model: NoteRNN, observation: torch.Tensor) -> torch.Tensor:
    """LSTM features after reading each observation's prefix: rows are [t, token_0..token_{L-1}]."""
    inputs, steps = _prefix(model, observation)
    features, _ = model.features(inputs)
    return features[torch.arange(len(inputs)), steps]


def prefix_logits(model: NoteModel, observation: torch.Tensor) -> torch.Tensor:
    """The model's next-token logits after reading each observation's prefix."""
    inputs, steps = _prefix(model, observation)
    logits, _ = model(inputs)
    return logits[torch.arange(len(inputs)), steps]


def q_reads_logits(prior: NoteModel) -> bool:
    """Whether the Q-network is a linear map of the prior's logits rather than of its hidden features: for
    the LSTM, Q = a linear head on the features (RL Tuner's); a Lookback LSTM's copy-gated mixture is not
    linear in its features, so Q = W · log p_prior + b with W = identity at the start."""
    return not isinstance(prior, NoteRNN)


class NoteRNNExtractor(BaseFeaturesExtractor):
    """The prior's layers reading the composition so far: the LSTM's features, or another arch's logits."""

    def __init__(self, observation_space: spaces.Box, prior: NoteModel) -> None:
        self.reads_logits = q_reads_logits(prior)
        super().__init__(
            observation_space, features_dim=prior.num_actions if self.reads_logits else prior.config.hidden_size
        )
        self.model = copy.deepcopy(prior)
        self.model.dropout.p = 0.0
        for parameter in self.model.parameters():
            parameter.requires_grad_(True)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.reads_logits:
            return prefix_logits(self.model, observations)
        return prefix_features(self.model, observations)


class NoteRNNQPolicy(DQNPolicy):
    """DQN policy whose Q-network starts as the Note RNN: Q(s, ·) = prior logits before training (dqn, psi),
    or the Note RNN's embedding and LSTM with a zero head (g, whose policy adds log p_prior itself)."""

    def __init__(self, *args: Any, prior: NoteModel, add_prior: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("net_arch", [])
        kwargs["features_extractor_class"] = NoteRNNExtractor
        kwargs["features_extractor_kwargs"] = {"prior": prior}
        kwargs.setdefault("normalize_images", False)
        self.add_prior = add_prior
        super().__init__(*args, **kwargs)
        self.frozen_prior = copy.deepcopy(prior).eval()
        for parameter in self.frozen_prior.parameters():
            parameter.requires_grad_(False)
        with torch.no_grad():
            for q_net in (self.q_net, self.q_net_target):
                head = q_net.q_net[0]
                if add_prior:
                    # G acts by Q + log p_prior: Q = 0 makes the initial policy exactly the prior (KL = 0).
                    head.weight.zero_()
                    head.bias.zero_()
                elif q_reads_logits(prior):
                    head.weight.copy_(torch.eye(prior.num_actions))
                    head.bias.zero_()
                else:
                    head.weight.copy_(prior.head.weight)
                    head.bias.copy_(prior.head.bias)

    def prior_log_probs(self, observation: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if q_reads_logits(self.frozen_prior):
                return torch.log_softmax(prefix_logits(self.frozen_prior, observation), -1)
            return torch.log_softmax(self.frozen_prior.head(prefix_features(self.frozen_prior, observation)), -1)

    def _predict(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        q_values = self.q_net(obs)
        if self.add_prior:
            q_values = q_values + self.prior_log_probs(obs)
        return q_values.argmax(dim=1).reshape(-1)

    def export_actor(self) -> NoteModel:
        """The Q-network as a prior (softmax of Q is the policy; G adds the prior, see PriorProduct)."""
        from notetune.pretrained.model import PriorProduct

        actor = copy.deepcopy(self.q_net.features_extractor.model).cpu().eval()
        head = self.q_net.q_net[0]
        frozen = copy.deepcopy(self.frozen_prior).cpu()
        if isinstance(actor, LookbackLSTM):  # Q = W · log p + b travels as the model's output layer
            actor = with_output_layer(actor, head.weight.detach().cpu(), head.bias.detach().cpu()).eval()
            frozen = with_output_layer(frozen).eval()  # identity: the same prior, the same config as the actor
        else:
            with torch.no_grad():
                actor.head.weight.copy_(head.weight)
                actor.head.bias.copy_(head.bias)
        for parameter in actor.parameters():
            parameter.requires_grad_(False)
        if self.add_prior:
            return PriorProduct(actor, frozen)  # type: ignore[return-value]
        return actor


class RLTunerDQN(DQN):
    """SB3 DQN with RL Tuner's loss (mean squared TD error) and a pluggable next-state value."""

    target: str = "max"

    def next_state_value(self, next_observations: torch.Tensor) -> torch.Tensor:
        q_values = self.q_net_target(next_observations)
        if self.target == "max":
            return q_values.max(dim=1).values
        if self.target == "logsumexp":
            return torch.logsumexp(q_values, dim=1)
        # G-learning: the prior weights the soft maximum.
        return torch.logsumexp(q_values + self.policy.prior_log_probs(next_observations), dim=1)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            with torch.no_grad():
                next_values = self.next_state_value(data.next_observations).reshape(-1, 1)
                targets = data.rewards + (1 - data.dones) * self.gamma * next_values
            current = torch.gather(self.q_net(data.observations), dim=1, index=data.actions.long())
            loss = nn.functional.mse_loss(current, targets)
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))

    # Run-state hooks shared with MelodyPPO; the replay buffer travels as tensors beside the checkpoint.
    def get_state(self) -> dict[str, Any]:
        buffer = self.replay_buffer
        return {
            "num_timesteps": self.num_timesteps,
            "n_updates": self._n_updates,
            "replay": {"pos": int(buffer.pos), "full": bool(buffer.full)} if buffer is not None else None,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.num_timesteps = int(state["num_timesteps"])
        self._n_updates = int(state["n_updates"])
        replay = state.get("replay")
        if replay and self.replay_buffer is not None:
            self.replay_buffer.pos, self.replay_buffer.full = int(replay["pos"]), bool(replay["full"])

    def get_buffers(self) -> dict[str, torch.Tensor]:
        """The filled part of the replay buffer (what a resumed run needs to learn exactly as before)."""
        buffer = self.replay_buffer
        if buffer is None:
            return {}
        size = buffer.buffer_size if buffer.full else buffer.pos
        tensors = {}
        for name in REPLAY_FIELDS:
            values = getattr(buffer, name, None)
            if values is None:
                continue
            values = values[:size]
            # Observations are small integers held as float32 ([t, tokens...]): kept as uint8 when that is exact
            # (a quarter of the bytes); set_buffers writes them back into the buffer's own dtype.
            if values.size and np.array_equal(values, values.astype(np.uint8)):
                values = values.astype(np.uint8)
            tensors[f"replay.{name}"] = torch.from_numpy(np.ascontiguousarray(values))
        return tensors

    def set_buffers(self, tensors: dict[str, torch.Tensor]) -> None:
        buffer = self.replay_buffer
        if buffer is None:
            return
        for name in REPLAY_FIELDS:
            if f"replay.{name}" in tensors:
                values = tensors[f"replay.{name}"].numpy()
                getattr(buffer, name)[: len(values)] = values  # into the buffer's own dtype (uint8 → float32)

    @property
    def generator(self) -> torch.Generator:
        return torch.default_generator


class PsiLearning(RLTunerDQN):
    target = "logsumexp"


class GLearning(RLTunerDQN):
    target = "prior_logsumexp"


def build_q_learner(config: Any, prior: NoteModel, rewards: RewardSet) -> RLTunerDQN:
    """The dqn/psi/g learner for a TuneConfig, on a MelodyVecEnv of ``config.num_envs`` compositions."""
    classes = {"dqn": RLTunerDQN, "psi": PsiLearning, "g": GLearning}
    env = MelodyVecEnv(
        prior, rewards, config.num_envs, rewards.length, log_prior_weight=0.0 if config.algo == "g" else 1.0
    )
    return classes[config.algo](
        NoteRNNQPolicy,
        env,
        learning_rate=config.learning_rate,
        buffer_size=config.buffer_size,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        train_freq=config.train_freq,
        gradient_steps=config.gradient_steps,
        target_update_interval=config.target_update_interval or max(config.train_freq, config.num_envs),
        exploration_fraction=config.exploration_fraction,
        exploration_initial_eps=config.exploration_initial_eps,
        exploration_final_eps=config.exploration_final_eps,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        device="cpu",
        policy_kwargs={"prior": prior, "add_prior": config.algo == "g"},
    )
