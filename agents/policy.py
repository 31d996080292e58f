"""The policy: a trainable copy of the Note RNN (so π = prior before the first update) plus a value head."""

from __future__ import annotations

import copy

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from notetune.pretrained.model import NoteRNN, State


class MelodyPolicy(BasePolicy):
    """Actor = the Note RNN's weights (its LSTM state is the policy's recurrent state).

    Critic = a small head on the actor's *detached* features plus a step embedding, so value learning
    never moves the policy, and the value can depend on the position in the bar.
    """

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Discrete, lr_schedule,
                 prior: NoteRNN, value_hidden: int = 64, optimizer_class=torch.optim.Adam,
                 optimizer_kwargs: dict | None = None) -> None:
        super().__init__(observation_space, action_space, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs or {})
        self.length = int(observation_space.shape[0]) - 1
        self.actor = copy.deepcopy(prior)
        self.actor.dropout.p = 0.0  # rollouts and updates must see the same distribution
        for parameter in self.actor.parameters():
            parameter.requires_grad_(True)
        hidden = self.actor.config.hidden_size
        self.value_in = nn.Linear(hidden, value_hidden)
        self.step_embedding = nn.Embedding(self.length + 1, value_hidden)
        self.value_out = nn.Linear(value_hidden, 1)
        nn.init.zeros_(self.value_out.weight)
        nn.init.zeros_(self.value_out.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    @property
    def start_token(self) -> int:
        return self.actor.start_token

    def _values(self, features: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.value_in(features.detach()) + self.step_embedding(steps))
        return self.value_out(hidden).squeeze(-1)

    def initial_state(self, batch_size: int) -> State:
        return self.actor.initial_state(batch_size)

    def step(self, last_tokens: torch.Tensor, state: State, t: int) -> tuple[torch.Tensor, torch.Tensor, State]:
        """(logits (B, V), values (B,), state) after feeding the previous token (the start token at t=0)."""
        features, state = self.actor.features(last_tokens.view(-1, 1), state)
        features = features[:, 0]
        steps = torch.full((features.shape[0],), t, dtype=torch.long, device=features.device)
        return self.actor.head(features), self._values(features, steps), state

    def evaluate_sequences(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For complete (B, T) compositions: log π of each token, entropy and value at each step."""
        batch, length = tokens.shape
        start = torch.full((batch, 1), self.start_token, dtype=torch.long, device=tokens.device)
        features, _ = self.actor.features(torch.cat([start, tokens[:, :-1]], dim=1))
        log_probs_all = torch.log_softmax(self.actor.head(features), dim=-1)
        log_probs = log_probs_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs_all.exp() * log_probs_all).sum(-1)
        steps = torch.arange(length, device=tokens.device).expand(batch, length)
        return log_probs, entropy, self._values(features, steps)

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """SB3's ``predict``: observation rows are [t, token_0..token_{L-1}] (padded after t)."""
        observation = observation.long().view(-1, self.length + 1)
        steps = observation[:, 0].clamp(max=self.length - 1)
        tokens = observation[:, 1:].clamp(max=self.start_token - 1)
        start = torch.full((len(tokens), 1), self.start_token, dtype=torch.long, device=tokens.device)
        features, _ = self.actor.features(torch.cat([start, tokens[:, :-1]], dim=1))
        logits = self.actor.head(features[torch.arange(len(tokens)), steps])
        if deterministic:
            return logits.argmax(-1)
        return torch.distributions.Categorical(logits=logits).sample()

    def forward(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self._predict(observation, deterministic)

    def export_actor(self) -> NoteRNN:
        """A stand-alone Note RNN with the tuned weights (what `notetune sample` loads)."""
        actor = copy.deepcopy(self.actor).cpu().eval()
        for parameter in actor.parameters():
            parameter.requires_grad_(False)
        return actor

    @staticmethod
    def sample(logits: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled actions (B,) and their log-probabilities."""
        log_probs = torch.log_softmax(logits, dim=-1)
        actions = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
        return actions, log_probs.gather(1, actions[:, None]).squeeze(1)


def numpy_tokens(tokens: torch.Tensor) -> np.ndarray:
    return tokens.detach().cpu().numpy().astype(np.int64)
