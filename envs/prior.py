"""The frozen prior as the environment sees it: numpy in, numpy out, one batched call per step."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from notetune.pretrained.sampling import warm_start


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
        parameters = list(getattr(model, "parameters", lambda: [])())
        self.log_probs_device = parameters[0].device if parameters else torch.device("cpu")
        self.log_probs: np.ndarray = np.zeros((0, model.num_actions))

    @torch.no_grad()
    def start(self, batch_size: int, primer: np.ndarray | None = None) -> np.ndarray:
        """Log-probabilities (B, V) of the first token; ``primer`` tokens warm the state first."""
        log_probs, self.state = warm_start(self.model, batch_size, primer)
        self.log_probs = log_probs.double().cpu().numpy()
        return self.log_probs

    @torch.no_grad()
    def step(self, actions: np.ndarray) -> np.ndarray:
        """Feed the chosen actions (B,) and return the next log-probabilities (B, V)."""
        device = self.log_probs_device
        log_probs, self.state = self.model.step(torch.as_tensor(actions, dtype=torch.long, device=device), self.state)
        self.log_probs = log_probs.double().cpu().numpy()
        return self.log_probs
