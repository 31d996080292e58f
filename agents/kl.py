"""KL-control: the penalty β·(log π(a|h) − log p_prior(a|h)) and how β is chosen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KLController:
    """β fixed, or adapted toward ``target`` nats of KL per composition (Ziegler et al. 2019).

    The adaptive update multiplies β by ``1 + clip(KL/target − 1, −0.2, 0.2) · melodies/horizon``.
    """

    beta: float = 5.0
    """Current KL coefficient."""
    target: float | None = 4.0
    """Target KL(π‖prior) per composition in nats; None keeps β fixed."""
    horizon: float = 1280.0
    """Melodies over which β may move by the clipped proportional error."""
    min_beta: float = 1e-3
    max_beta: float = 1e3

    def update(self, kl_per_melody: float, melodies: int) -> float:
        if self.target is not None and self.target > 0:
            error = min(max(kl_per_melody / self.target - 1.0, -0.2), 0.2)
            self.beta *= 1.0 + error * melodies / self.horizon
            self.beta = min(max(self.beta, self.min_beta), self.max_beta)
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.target = state["target"]
        self.horizon = float(state["horizon"])
