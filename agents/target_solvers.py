"""Two ways to choose the multipliers λ_i ≥ 0 of the constraint terms (:mod:`notetune.agents.targets`).

- :class:`LagrangianSolver`: "minimise KL to the prior (optionally minus the music reward) subject to the
  targets" by dual ascent on rollout estimates of each constraint's slack, with Stooke, Achiam & Abbeel's
  (2020) PID update so that λ does not oscillate around the bound.
- :func:`fit_distributional_multipliers` / :class:`DistributionalSolver` (Khalifa, Elsahar & Dymetman 2021):
  the distribution closest to the prior (in KL) that meets the moment constraints E_p[g_i] ≥ 0 is
  p(x) ∝ p_prior(x)·exp(Σ λ_i g_i(x)); λ is fitted on prior samples (importance-weighted when the samples come
  from another model). A policy trained with reward Σ λ_i g_i and a *fixed* β = 1 has exactly that p as its
  optimum (the KL-regularised optimum is p_prior·exp(r/β)).

Both expose ``multipliers`` (term name → λ), ``update(slacks)``, ``infeasible`` and ``state_dict`` /
``load_state_dict``; the multipliers are the weights of the constraint terms in the reward set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


class LagrangianSolver:
    """One multiplier per constraint, updated once per rollout from the constraint's slack (≥ 0 when met).

    With violation v = −slack / scale: I ← max(0, I + v); P = EMA of v; D = max(0, rise of that EMA);
    λ = clip(kp·P + ki·I + kd·D, 0, max_multiplier). λ therefore rises while a target is missed and falls back
    (to 0) while it is met with room to spare. ``scales`` divide each slack first (e.g. a bound of 0.001 and
    one of 0.97 need different units for one set of gains).

    A target is flagged infeasible when λ reaches ``max_multiplier``, or when it has been missed at each of the
    last ``patience`` updates (so λ rose at each) while its smoothed violation shrank by less than
    ``min_progress`` of itself: a target within reach is crossed now and then as λ settles, or approached.
    """

    def __init__(
        self,
        names: Sequence[str],
        kp: float = 2.0,
        ki: float = 2.0,
        kd: float = 0.0,
        smoothing: float = 0.8,
        max_multiplier: float = 1e3,
        patience: int = 50,
        min_progress: float = 0.2,
        scales: Mapping[str, float] | None = None,
    ) -> None:
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must lie in [0, 1), got {smoothing}")
        if min(kp, ki, kd) < 0 or max_multiplier <= 0:
            raise ValueError("PID gains must be non-negative and max_multiplier positive")
        self.names = tuple(names)
        self.kp, self.ki, self.kd, self.smoothing = kp, ki, kd, smoothing
        self.max_multiplier = max_multiplier
        self.patience = patience
        self.min_progress = min_progress
        self.scales = {name: float((scales or {}).get(name, 1.0)) for name in self.names}
        self.multipliers = dict.fromkeys(self.names, 0.0)
        self.integral = dict.fromkeys(self.names, 0.0)
        self.smoothed: dict[str, float | None] = dict.fromkeys(self.names, None)
        self.streak: dict[str, list[float]] = {name: [] for name in self.names}
        """Smoothed violations of the current run of missed updates (the last ``patience + 1``)."""
        self.updates = 0

    def update(self, slacks: Mapping[str, float]) -> dict[str, float]:
        """One dual step from this rollout's slack estimates; returns the new multipliers."""
        missing = [name for name in self.names if name not in slacks]
        if missing:
            raise KeyError(f"no slack estimate for {', '.join(missing)}")
        for name in self.names:
            slack = float(slacks[name])
            if not math.isfinite(slack):
                continue  # e.g. no leaps at all in the batch: no evidence either way
            violation = -slack / self.scales[name]
            previous = self.smoothed[name]
            smoothed = violation if previous is None else self.smoothing * previous + (1 - self.smoothing) * violation
            rise = 0.0 if previous is None else max(0.0, smoothed - previous)
            self.smoothed[name] = smoothed
            self.integral[name] = max(0.0, self.integral[name] + violation)
            value = self.kp * smoothed + self.ki * self.integral[name] + self.kd * rise
            self.multipliers[name] = min(max(value, 0.0), self.max_multiplier)
            self.streak[name] = [*self.streak[name], smoothed][-(self.patience + 1) :] if violation > 0 else []
        self.updates += 1
        return dict(self.multipliers)

    @property
    def infeasible(self) -> list[str]:
        """Targets whose multiplier keeps growing without the target coming within reach."""
        return [
            name
            for name in self.names
            if self.multipliers[name] >= self.max_multiplier
            or (
                len(self.streak[name]) > self.patience
                and self.streak[name][-1] > (1 - self.min_progress) * self.streak[name][0]
            )
        ]

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state for checkpoints."""
        return {
            "names": list(self.names),
            "multipliers": dict(self.multipliers),
            "integral": dict(self.integral),
            "smoothed": dict(self.smoothed),
            "streak": {name: list(values) for name, values in self.streak.items()},
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state["names"]) != list(self.names):
            raise ValueError(
                f"the checkpoint's targets ({', '.join(state['names'])}) are not this run's "
                f"({', '.join(self.names)}); resume with the targets the run was started with"
            )
        for field in ("multipliers", "integral", "smoothed", "streak"):
            getattr(self, field).update(state[field])
        self.updates = int(state["updates"])


# ------------------------------------------------------------------------------------ distributional
@dataclass(frozen=True)
class DistributionalFit:
    """λ of p ∝ p_prior·exp(λ·g) and what it implies on the samples it was fitted on."""

    multipliers: np.ndarray
    """(m,) λ_i ≥ 0."""
    moments: np.ndarray
    """(m,) E_p[g_i] under the fitted p (≥ 0 up to ``tolerance`` for every met constraint)."""
    effective_sample_size: float
    """1 / Σ w² of the normalised importance weights: how many samples the estimate rests on."""
    infeasible: np.ndarray
    """(m,) bool: λ_i reached the cap (no tilt of the prior makes this moment non-negative on these samples)."""
    iterations: int


def fit_distributional_multipliers(
    features: np.ndarray,
    log_weights: np.ndarray | None = None,
    max_multiplier: float = 1e3,
    tolerance: float = 1e-9,
    max_iterations: int = 200,
) -> DistributionalFit:
    """λ ≥ 0 such that p ∝ p_prior·exp(λ·g) meets E_p[g] ≥ 0 with the least KL(p‖p_prior).

    ``features`` (N, m) are the constraint features g of N samples; samples of the prior itself by default,
    otherwise ``log_weights`` (N,) = log p_prior − log q of the model q that drew them. Solves the convex dual
    min_{λ ≥ 0} log E_prior[exp(λ·g)] (its gradient is E_p[g]) by projected Newton steps with backtracking.
    """
    g = np.asarray(features, dtype=np.float64)
    if g.ndim != 2 or not len(g):
        raise ValueError(f"features must be (samples, constraints) with at least one sample; got {g.shape}")
    base = np.zeros(len(g)) if log_weights is None else np.asarray(log_weights, dtype=np.float64)
    base = base - _logsumexp(base)
    m = g.shape[1]

    def dual(lam: np.ndarray) -> float:
        return _logsumexp(base + g @ lam)

    lam = np.zeros(m)
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        q = _softmax(base + g @ lam)
        gradient = q @ g
        free = (lam > 0) | (gradient < 0)  # a moment already met at λ = 0 stays unweighted (KKT)
        if not free.any() or np.abs(gradient[free]).max() < tolerance:
            break
        centred = g[:, free] - gradient[free]
        hessian = (centred * q[:, None]).T @ centred + 1e-12 * np.eye(int(free.sum()))
        direction = np.zeros(m)
        direction[free] = -np.linalg.solve(hessian, gradient[free])
        step, value = 1.0, dual(lam)
        while step > 1e-12:
            candidate = np.clip(lam + step * direction, 0.0, max_multiplier)
            if dual(candidate) <= value + 1e-4 * gradient @ (candidate - lam):
                break
            step /= 2
        if step <= 1e-12 or np.array_equal(candidate, lam):
            break
        lam = candidate
    q = _softmax(base + g @ lam)
    return DistributionalFit(
        multipliers=lam,
        moments=q @ g,
        effective_sample_size=float(1.0 / np.sum(q**2)),
        infeasible=lam >= max_multiplier,
        iterations=iterations,
    )


class DistributionalSolver:
    """Multipliers fitted by moment matching (:func:`fit_distributional_multipliers`); ``update`` keeps them
    (the rollout's slacks are recorded), ``fit`` re-fits them on fresh samples."""

    def __init__(self, names: Sequence[str], max_multiplier: float = 1e3) -> None:
        self.names = tuple(names)
        self.max_multiplier = max_multiplier
        self.multipliers = dict.fromkeys(self.names, 0.0)
        self.last_fit: DistributionalFit | None = None
        self.last_slacks: dict[str, float] = {}

    def fit(self, features: np.ndarray, log_weights: np.ndarray | None = None) -> dict[str, float]:
        fit = fit_distributional_multipliers(features, log_weights, self.max_multiplier)
        self.last_fit = fit
        self.multipliers = {name: float(value) for name, value in zip(self.names, fit.multipliers, strict=True)}
        return dict(self.multipliers)

    def update(self, slacks: Mapping[str, float]) -> dict[str, float]:
        self.last_slacks = {name: float(slacks[name]) for name in self.names}
        return dict(self.multipliers)

    @property
    def infeasible(self) -> list[str]:
        if self.last_fit is None:
            return []
        return [name for name, flag in zip(self.names, self.last_fit.infeasible, strict=True) if flag]

    def state_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "multipliers": dict(self.multipliers)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if list(state["names"]) != list(self.names):
            raise ValueError(
                f"the checkpoint's targets ({', '.join(state['names'])}) are not this run's ({', '.join(self.names)})"
            )
        self.multipliers.update({name: float(value) for name, value in state["multipliers"].items()})


# ------------------------------------------------------------------------------------------- wiring
class TargetMultipliers(BaseCallback):
    """After each rollout of MelodyPPO/MelodyGRPO: read each constraint term's mean (its slack), update the
    solver, write the multipliers into the environment's reward weights, and log both."""

    def __init__(self, solver: LagrangianSolver | DistributionalSolver, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.solver = solver

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        stats = self.model.last_rollout_stats
        slacks = {name: stats[f"rewards/{name}/mean"] for name in self.solver.names}
        multipliers = self.solver.update(slacks)
        self.training_env.rewards.set_weights(multipliers)
        for name in self.solver.names:
            self.logger.record(f"targets/{name}/slack", slacks[name])
            self.logger.record(f"targets/{name}/multiplier", multipliers[name])


def _logsumexp(values: np.ndarray) -> float:
    peak = float(np.max(values))
    return peak + math.log(float(np.sum(np.exp(values - peak))))


def _softmax(values: np.ndarray) -> np.ndarray:
    weights = np.exp(values - np.max(values))
    return weights / weights.sum()
