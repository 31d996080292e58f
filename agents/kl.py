"""KL-control: the penalty β·(log π(a|h) − log p_prior(a|h)) and how β is chosen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KLController:
    """β fixed, or adapted toward ``target`` nats of KL per composition (Ziegler et al. 2019), with anti-windup.

    The adaptive update multiplies β by ``1 + clip(KL/target − 1, −0.2, 0.2) · melodies/horizon``, except that
    β does not fall while the KL is below the target but still rising (above its running mean). Early in a run
    the policy cannot move as fast as β may fall, so a plain proportional update drives β to ~0 before the KL
    arrives; it then overshoots the target several-fold before β climbs back (measured: KL 4 → 33 nats and a
    collapse, with β at 0.001). Holding β while the KL is still on its way removes that windup.
    """

    beta: float
    """Current KL coefficient (TuneConfig.kl_coef owns the default)."""
    target: float | None
    """Target KL(π‖prior) per composition in nats; None keeps β fixed."""
    horizon: float
    """Compositions over which β may move by the clipped proportional error (and over which KL is averaged)."""
    min_beta: float = 1e-3
    """Smallest β (TuneConfig.kl_min_beta)."""
    max_beta: float = 1e3
    """Largest β (TuneConfig.kl_max_beta)."""
    kl_average: float | None = None
    """Running mean of the measured KL per composition."""

    def update(self, kl_per_composition: float, melodies: int) -> float:
        if self.target is not None and self.target > 0:
            error = min(max(kl_per_composition / self.target - 1.0, -0.2), 0.2)
            rising = self.kl_average is None or kl_per_composition > self.kl_average
            if error > 0 or not rising:
                self.beta *= 1.0 + error * melodies / self.horizon
                self.beta = min(max(self.beta, self.min_beta), self.max_beta)
        rate = min(melodies / self.horizon, 1.0)
        previous = kl_per_composition if self.kl_average is None else self.kl_average
        self.kl_average = previous + rate * (kl_per_composition - previous)
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta, "target": self.target, "horizon": self.horizon, "kl_average": self.kl_average}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.target = state["target"]
        self.horizon = float(state["horizon"])
        self.kl_average = state.get("kl_average")
