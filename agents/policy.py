"""The policy: a trainable copy of the prior (so π = prior before the first update) plus a value head.

Any prior architecture works: the policy uses only the prior's interface (``logits_and_features``,
``initial_state``, ``forward``), so a Lookback LSTM's copy gate is tuned like the LSTM's weights."""

from __future__ import annotations

import copy

import numpy as np
import torch
from gymnasium import spaces
from notetune.pretrained.form import FormLayout, form_allowed, form_allowed_sequences
from notetune.pretrained.model import NoteModel, with_position_bias
from notetune.pretrained.sampling import history_prefix
from stable_baselines3.common.policies import BasePolicy
from torch import nn

MASKED_LOGIT = -1e9
"""Logit of an action the constraints forbid: probability exactly 0, and 0·log 0 stays 0 in the entropy."""


class MelodyPolicy(BasePolicy):
    """Actor = the Note RNN's weights (its LSTM state is the policy's recurrent state).

    Critic = a small head on the actor's *detached* features plus a step embedding, so value learning
    never moves the policy, and the value can depend on the position in the bar.

    ``primer`` (P,) tokens are read after the start token and before step 0, exactly as the environment
    warms the prior; ``allowed`` (length, V) masks the logits at each step (constraints). With both
    applied identically to policy and prior, π = prior (KL = 0) before the first update. ``form`` (a strict
    form's layout) masks by what was generated: in a returning phrase only the copied token is allowed, in the
    rollout (:meth:`step` reads the tokens so far) and in its replay (:meth:`evaluate_sequences`) alike.
    ``position_bias`` gives the actor a learned, zero-initialised logit bias per position (primer and piece:
    :class:`~notetune.pretrained.model.PositionBias`), so it knows where in the piece it is; with
    ``phrase_lags`` it can also copy from (or avoid) the same place in each earlier phrase, with ``phrase_gate``
    also by one weight per phrase. The export keeps it.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Discrete,
        lr_schedule,
        prior: NoteModel,
        value_hidden: int = 64,
        optimizer_class=torch.optim.Adam,
        optimizer_kwargs: dict | None = None,
        primer: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        form: FormLayout | None = None,
        position_bias: bool = False,
        phrase_lags: tuple[int, ...] = (),
        phrase_gate: bool = False,
    ) -> None:
        super().__init__(
            observation_space, action_space, optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs or {}
        )
        self.length = int(observation_space.shape[0]) - 1
        primer_length = 0 if primer is None else len(primer)
        rows = primer_length + self.length
        if position_bias:
            self.actor = with_position_bias(prior, rows, phrase_lags, primer_length if phrase_gate else -1)
        else:
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
        # Plain tensors, not buffers: they come from the run's config, so checkpoints stay weights only.
        self.primer_tokens = None if primer is None else np.asarray(primer, dtype=np.int64)
        self.allowed = torch.as_tensor(np.asarray(allowed, dtype=bool)) if allowed is not None else None
        if self.allowed is not None and self.allowed.shape != (self.length, self.actor.num_actions):
            raise ValueError(
                f"the action mask must be (length, V) = ({self.length}, {self.actor.num_actions}); "
                f"got {tuple(self.allowed.shape)}"
            )
        if form is not None and form.length != self.length:
            raise ValueError(f"the strict form is laid out on {form.length} steps, not {self.length}")
        self.form = form

    @property
    def start_token(self) -> int:
        return self.actor.start_token

    def history_prefix(self, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(B, 1 + P) ids read before the first action: the start token, then the primer."""
        return history_prefix(self.actor, batch_size, self.primer_tokens, device)

    @torch.no_grad()
    def warm_state(self, batch_size: int) -> tuple[torch.Tensor, object]:
        """(tokens to feed at step 0, state) for a rollout: the start token and a zero state, or — with a
        primer — the primer's last token and the state after reading everything before it."""
        prefix = self.history_prefix(batch_size, self.actor.head.weight.device)
        state = self.initial_state(batch_size)
        if prefix.shape[1] > 1:
            _, state = self.actor(prefix[:, :-1], state)
        return prefix[:, -1], state

    def mask_logits(
        self, logits: torch.Tensor, steps: torch.Tensor | int | slice, tokens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (..., V) with the actions forbidden at ``steps`` set to MASKED_LOGIT.

        Under a strict form the mask depends on the compositions ``tokens``: (B, >= t) generated so far for
        one step ``t`` (B, V logits), or the whole (B, T) compositions for ``steps = slice(0, T)``.
        """
        if self.form is not None:
            if tokens is None:
                raise ValueError("a strict form masks by what was generated: pass the compositions' tokens")
            allowed = self._numpy_allowed()
            vocab_size = logits.shape[-1]
            if isinstance(steps, int):
                mask = form_allowed(numpy_tokens(tokens), steps, self.form, vocab_size, allowed)
            else:
                mask = form_allowed_sequences(numpy_tokens(tokens), self.form, vocab_size, allowed)
            return logits.masked_fill(~torch.from_numpy(mask).to(logits.device), MASKED_LOGIT)
        if self.allowed is None:
            return logits
        allowed = self.allowed.to(logits.device)[steps]
        return logits.masked_fill(~allowed, MASKED_LOGIT)

    def _numpy_allowed(self) -> np.ndarray | None:
        return None if self.allowed is None else self.allowed.numpy()

    def _values(self, features: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.value_in(features.detach()) + self.step_embedding(steps))
        return self.value_out(hidden).squeeze(-1)

    def initial_state(self, batch_size: int) -> object:
        return self.actor.initial_state(batch_size)

    def step(
        self, last_tokens: torch.Tensor, state: object, t: int, tokens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, object]:
        """(logits (B, V), values (B,), state) after feeding the previous token (at t=0: from ``warm_state``).

        ``tokens`` (B, >= t): the compositions so far, which a strict form's mask reads."""
        logits, features, state = self.actor.logits_and_features(last_tokens.view(-1, 1), state)
        features = features[:, 0]
        steps = torch.full((features.shape[0],), t, dtype=torch.long, device=features.device)
        return self.mask_logits(logits[:, 0], t, tokens), self._values(features, steps), state

    def evaluate_sequences(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For complete (B, T) compositions: log π of each token, entropy and value at each step."""
        batch, length = tokens.shape
        prefix = self.history_prefix(batch, tokens.device)
        logits, features, _ = self.actor.logits_and_features(torch.cat([prefix, tokens[:, :-1]], dim=1))
        features = features[:, prefix.shape[1] - 1 :]
        logits = self.mask_logits(logits[:, prefix.shape[1] - 1 :], slice(0, length), tokens)
        log_probs_all = torch.log_softmax(logits, dim=-1)
        log_probs = log_probs_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs_all.exp() * log_probs_all).sum(-1)
        steps = torch.arange(length, device=tokens.device).expand(batch, length)
        return log_probs, entropy, self._values(features, steps)

    def _predict(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """SB3's ``predict``: observation rows are [t, token_0..token_{L-1}] (padded after t)."""
        observation = observation.long().view(-1, self.length + 1)
        steps = observation[:, 0].clamp(max=self.length - 1)
        tokens = observation[:, 1:].clamp(max=self.start_token - 1)
        prefix = self.history_prefix(len(tokens), tokens.device)
        logits, _ = self.actor(torch.cat([prefix, tokens[:, :-1]], dim=1))
        logits = logits[torch.arange(len(tokens)), steps + prefix.shape[1] - 1]
        if self.form is not None:  # rows may be at different steps: the whole-sequence mask, each row's step
            every = self.mask_logits(torch.zeros(*tokens.shape, logits.shape[-1]), slice(0, self.length), tokens)
            logits = logits.masked_fill(every[torch.arange(len(tokens)), steps] == MASKED_LOGIT, MASKED_LOGIT)
        else:
            logits = self.mask_logits(logits, steps)
        if deterministic:
            return logits.argmax(-1)
        return torch.distributions.Categorical(logits=logits).sample()

    def forward(self, observation: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return self._predict(observation, deterministic)

    def export_actor(self) -> NoteModel:
        """A stand-alone prior of the same architecture with the tuned weights (what `notetune sample` loads)."""
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
