"""The frozen prior as the environment sees it: numpy in, numpy out, one batched call per step."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class StepModel(Protocol):
    """What the environment needs of a note model (the Note RNN satisfies it)."""

    num_actions: int

    def start(self, batch_size: int) -> tuple[torch.Tensor, object]: ...

    def step(self, tokens: torch.Tensor, state: object) -> tuple[torch.Tensor, object]: ...


class PriorScorer:
    """Carries the prior's state for a batch of melodies and returns log p_prior(· | history)."""

    def __init__(self, model: StepModel) -> None:
        self.model = model
        for parameter in getattr(model, "parameters", lambda: [])():
            parameter.requires_grad_(False)
        if hasattr(model, "eval"):
            model.eval()
        self.state: object = None
        self.device = torch.device("cpu")
        self.log_probs: np.ndarray = np.zeros((0, model.num_actions))

    @torch.no_grad()
    def start(self, batch_size: int, primer: np.ndarray | None = None) -> np.ndarray:
        """Log-probabilities (B, V) of the first token; ``primer`` tokens warm the state first."""
        log_probs, self.state = self.model.start(batch_size)
        self.device = log_probs.device  # the model's; actions arrive as numpy and are moved there
        for token in primer if primer is not None else ():
            log_probs, self.state = self.model.step(
                torch.full((batch_size,), int(token), device=log_probs.device), self.state
            )
        self.log_probs = log_probs.double().cpu().numpy()
        return self.log_probs

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> np.ndarray:
        """Feed the chosen actions (B,) and return the next log-probabilities (B, V)."""
        actions = torch.as_tensor(actions, dtype=torch.long, device=self.device)
        log_probs, self.state = self.model.step(actions, self.state)
        self.log_probs = log_probs.double().cpu().numpy()
        return self.log_probs
