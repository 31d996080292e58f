"""The state machine shared by the single and the batched environment: a batch of compositions that
advance together one 16th-note token at a time, scored by the reward set and the frozen prior."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from notetune.pretrained.form import FormLayout, check_form_constraints, form_allowed
from notetune.pretrained.sampling import mask_log_probs
from notetune.rewards.reward_set import RewardSet

from .prior import PriorScorer, StepModel


@dataclass
class StepResult:
    """Everything one step produced, batched: the fast path reads these arrays directly."""

    reward: np.ndarray
    """(B,) reward paid to the agent: Σ weight·term (+ log_prior_weight · log p_prior)."""
    terms: dict[str, np.ndarray]
    """Unweighted reward terms, (B,) each."""
    log_prior: np.ndarray
    """(B,) log p_prior(action | history)."""
    done: bool
    """Whether the compositions are complete."""


class CompositionBatch:
    """B compositions of ``length`` steps; observation row = [t, token_0, ..., token_{L-1}] (pad = V).

    ``primer`` (P,) tokens warm the prior's state before step 0; they are not part of the composition, so
    rewards and statistics never see them. ``allowed`` (length, V) bool masks the actions at each step:
    the prior is renormalised over the allowed tokens (so log p_prior and the KL term compare the policy
    with the prior *under the same constraints*) and a forbidden action is refused. ``form`` (a strict form's
    layout) adds masks that depend on what was generated: in a returning phrase the only allowed action is the
    token at the same offset of the phrase it returns to; the prior is renormalised over it too.
    """

    def __init__(
        self,
        prior: StepModel,
        rewards: RewardSet,
        batch_size: int,
        length: int = 32,
        log_prior_weight: float = 0.0,
        primer: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        form: FormLayout | None = None,
    ) -> None:
        if rewards.length != length:
            raise ValueError(f"the reward set was built for {rewards.length}-step compositions, not {length}")
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (length, prior.num_actions):
                raise ValueError(
                    f"the action mask must be (length, V) = ({length}, {prior.num_actions}); got {allowed.shape}"
                )
            if not allowed.any(axis=1).all():
                raise ValueError(f"the action mask allows nothing at step {int(np.argmin(allowed.any(axis=1)))}")
        if primer is not None and len(primer) and (np.min(primer) < 0 or np.max(primer) >= prior.num_actions):
            raise ValueError(f"primer tokens must lie in 0..{prior.num_actions - 1}")
        self.prior = PriorScorer(prior)
        self.rewards = rewards
        self.batch_size = batch_size
        self.length = length
        self.num_actions = prior.num_actions
        self.pad = prior.num_actions
        self.log_prior_weight = log_prior_weight
        self.primer = None if primer is None or not len(primer) else np.asarray(primer, dtype=np.int64)
        self.allowed = allowed
        if form is not None:
            if form.length != length:
                raise ValueError(f"the strict form is laid out on {form.length} steps, not {length}")
            check_form_constraints(form, allowed)
        self.form = form
        self.tokens = np.full((batch_size, length), self.pad, dtype=np.int64)
        self.t = 0
        self._prior_log_probs = np.zeros((batch_size, self.num_actions))

    def reset(self) -> np.ndarray:
        self.tokens.fill(self.pad)
        self.t = 0
        self.prior.start(self.batch_size, self.primer)
        self._prior_log_probs = self._masked(self.prior.log_probs)
        self.rewards.reset(self.batch_size)
        return self.observation()

    def _masked(self, log_probs: np.ndarray) -> np.ndarray:
        """The prior renormalised over the tokens allowed at the current step (−inf elsewhere)."""
        if (self.allowed is None and self.form is None) or self.t >= self.length:
            return log_probs
        return mask_log_probs(torch.from_numpy(log_probs), torch.from_numpy(self.action_mask())).numpy()

    def action_mask(self) -> np.ndarray:
        """(B, V) bool: the actions allowed at the current step (all True without constraints or strict form)."""
        if self.t >= self.length or (self.allowed is None and self.form is None):
            return np.ones((self.batch_size, self.num_actions), dtype=bool)
        if self.form is not None:
            return form_allowed(self.tokens, self.t, self.form, self.num_actions, self.allowed)
        return np.broadcast_to(self.allowed[self.t], (self.batch_size, self.num_actions)).copy()

    def observation(self) -> np.ndarray:
        obs = np.empty((self.batch_size, self.length + 1), dtype=np.int64)
        obs[:, 0] = self.t
        obs[:, 1:] = self.tokens
        return obs

    @property
    def prior_log_probs(self) -> np.ndarray:
        """(B, V) log p_prior of the next token given the compositions so far (renormalised over the
        allowed tokens when there are constraints)."""
        return self._prior_log_probs

    def step(self, actions: np.ndarray) -> StepResult:
        if self.t >= self.length:
            raise RuntimeError("the compositions are complete; call reset()")
        actions = np.asarray(actions, dtype=np.int64).reshape(self.batch_size)
        if actions.min() < 0 or actions.max() >= self.num_actions:
            raise ValueError(f"actions must lie in 0..{self.num_actions - 1}, got {actions.min()}..{actions.max()}")
        if self.form is not None:
            mask = self.action_mask()
            broken = ~mask[np.arange(self.batch_size), actions]
            if broken.any():
                row = int(np.argmax(broken))
                raise ValueError(
                    f"action {int(actions[row])} at step {self.t} breaks the strict form {self.form.form} (allowed "
                    f"here: {np.flatnonzero(mask[row]).tolist()}); mask the policy with action_masks()"
                )
        elif self.allowed is not None and not self.allowed[self.t, actions].all():
            bad = int(actions[~self.allowed[self.t, actions]][0])
            raise ValueError(
                f"action {bad} at step {self.t} breaks the constraints (allowed here: "
                f"{np.flatnonzero(self.allowed[self.t]).tolist()}); mask the policy with action_masks()"
            )
        prior_log_probs = self._prior_log_probs
        log_prior = prior_log_probs[np.arange(self.batch_size), actions]
        self.tokens[:, self.t] = actions
        terms = self.rewards.step(self.tokens, self.t, prior_log_probs)
        reward = self.rewards.total(terms)
        if self.log_prior_weight:
            reward = reward + self.log_prior_weight * log_prior
        self.t += 1
        done = self.t == self.length
        if not done:
            self._prior_log_probs = self._masked(self.prior.step(actions))
        return StepResult(reward, terms, log_prior, done)
