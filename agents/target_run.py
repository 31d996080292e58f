"""The targets of one tuning run (``--target``, ``[targets]``, the default novelty targets), wired end to end.

:class:`RunTargets` parses and checks them before any work, adds one constraint term per reward-shaping target
to the run's reward set, resolves relative bounds once the untuned baseline is measured (the watcher's, on the
confirmation batch at step 0), and owns the solver:

- ``lagrangian``: multipliers by PID dual ascent on each rollout's slack estimates (:class:`TargetCallback`);
- ``distributional``: multipliers fitted at the start by moment matching on the prior's own samples (uniform
  importance weights, since they are the prior's), then re-fitted every ``refit_every`` steps on the policy's
  own compositions with importance weights p_prior/π — as the policy nears p_prior·exp(λ·g), its samples cover
  the region a far target tilts toward, where the prior's samples are few; the run trains with β fixed at 1
  so that its optimum is p_prior·exp(λ·g).

Its multipliers travel in training checkpoints (``TrainingState.targets``) and its summary goes into run.json.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from notetune.rewards.evaluation import figure_names
from notetune.rewards.reward_set import RewardSet
from stable_baselines3.common.callbacks import BaseCallback

from .selection import relative_shortfall
from .target_solvers import DistributionalSolver, LagrangianSolver
from .targets import (
    CONSTRAINABLE,
    LOG_PRIOR,
    NOVELTY,
    Target,
    composition_counts,
    constraint_features,
    denominator_scales,
    parse_targets,
    with_targets,
)

RELATIVE_FLOOR = 0.01
"""Bounds nearer 0 than this (e.g. not_in_key<=0) scale their term as if they were this."""
PriorSamples = Callable[[int], tuple[np.ndarray, np.ndarray]]
"""num → (tokens (num, T), summed log p_prior (num,)) of the prior's compositions."""
PolicySamples = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""(num, step) → (tokens (num, T), summed log p_prior (num,), summed log π (num,)) of the policy's compositions
(its sampling seed follows from the step, so a resumed run draws the same)."""


class RunTargets:
    """Parsed targets, their constraint terms in the training reward set, and the solver of their multipliers."""

    def __init__(
        self,
        targets: Sequence[Target],
        solver: str = "lagrangian",
        *,
        kp: float = 2.0,
        ki: float = 2.0,
        kd: float = 0.0,
        max_multiplier: float = 1e3,
        prior_samples: int = 2048,
    ) -> None:
        if solver not in ("lagrangian", "distributional"):
            raise ValueError(f"unknown solver {solver!r}; choose lagrangian or distributional")
        self.targets = list(targets)
        self.shaping = [t for t in self.targets if t.statistic in CONSTRAINABLE]
        """Targets with per-composition counts: each gets a constraint term (the others only choose checkpoints)."""
        self.solver_name = solver
        self.prior_samples = prior_samples
        names = [t.name for t in self.shaping]
        self.solver: LagrangianSolver | DistributionalSolver = (
            LagrangianSolver(names, kp=kp, ki=ki, kd=kd, max_multiplier=max_multiplier)
            if solver == "lagrangian"
            else DistributionalSolver(names, max_multiplier=max_multiplier)
        )
        self.rewards: RewardSet | None = None
        self.baseline: dict[str, float] | None = None
        self.bounds: dict[str, float] = {}
        self.scales: dict[str, float] = {}
        self.relative: dict[str, float] = {}
        self.fits: list[dict[str, Any]] = []
        """Distributional: each fit's step, multipliers and effective sample size (kept with the checkpoints)."""
        self.history: list[dict[str, float]] = []
        """Multipliers after each solver update (kept with the checkpoints, for the infeasibility warning)."""

    @classmethod
    def from_config(cls, config: Any, reward_names: Sequence[str], has_corpus: bool) -> RunTargets:
        """The run's targets: ``config.target`` plus ``config.novelty_target`` (skipped without a corpus) and,
        with a soft form, ``config.form_target``,
        refused with a did-you-mean when a statistic is not an evaluation figure."""
        texts = [*config.target, *(f"{name}{bound}" for name, bound in config.targets.items())]
        known = figure_names(tuple(reward_names))
        targets = parse_targets(texts, known=known)
        defaults = [
            *(config.novelty_target if has_corpus else []),
            *(config.form_target if config.form and not config.form_strict else []),
        ]
        for target in parse_targets([text for text in defaults if text.strip().lower() != "none"], known=known):
            if target.name not in {t.name for t in targets}:  # a --target on the same side overrides a default
                targets.append(target)
        return cls(
            targets,
            config.solver,
            kp=config.target_kp,
            ki=config.target_ki,
            kd=config.target_kd,
            max_multiplier=config.max_multiplier,
        )

    # ------------------------------------------------------------------------------------------ rewards
    def add_terms(self, rewards: RewardSet) -> RewardSet:
        """``rewards`` plus one constraint term per shaping target, weighted 0 until :meth:`resolve`.

        Relative bounds are placeholders until then (the baseline is measured at step 0, before any rollout)."""
        placeholder = {t.statistic: 1.0 for t in self.shaping if t.relative}
        self.rewards = with_targets(rewards, self.shaping, baseline=placeholder)
        return self.rewards

    def resolve(self, baseline: Mapping[str, float], sample_prior: PriorSamples, setup: Any) -> None:
        """Fix every bound from the untuned ``baseline`` and every term's scale from the prior's samples; the
        distributional solver fits its multipliers on the same samples. Deterministic, so a resumed run
        resolves to the same bounds."""
        self.baseline = dict(baseline)
        if not self.shaping:
            return
        tokens, log_prior = sample_prior(self.prior_samples)
        statistics = [t.statistic for t in self.shaping]
        index = None
        if any(s in NOVELTY for s in statistics):
            from notetune.rewards.metrics import NoteNgramIndex

            index = NoteNgramIndex(setup.corpus)
        counts = composition_counts(tokens, statistics, setup, index, log_prior if LOG_PRIOR in statistics else None)
        self.scales = denominator_scales(counts)
        self.bounds = {t.name: t.bound(self.baseline) for t in self.shaping}
        # Each term pays its slack relative to its bound (rate / bound − 1): one set of PID gains then serves
        # a bound of 0.001 and one of 0.97, and a term is comparable with a music reward of any size.
        self.relative = {t.name: max(abs(self.bounds[t.name]), RELATIVE_FLOOR) for t in self.shaping}
        for name, fn in self.rewards._rewards if self.rewards is not None else ():
            target = next((t for t in self.shaping if t.name == name), None)
            if target is not None:  # the term's class holds its bound and scale (see constraint_entries)
                type(fn).bound = self.bounds[name]
                type(fn).scale = self.scales[target.statistic] * self.relative[name]
        if isinstance(self.solver, DistributionalSolver) and not self.fits:
            self.fit(0, tokens, log_prior, None, setup)
        self.apply()

    def fit(
        self, step: int, tokens: np.ndarray, log_prior: np.ndarray, log_policy: np.ndarray | None, setup: Any
    ) -> dict[str, Any]:
        """Distributional: fit λ on finished compositions with their summed log p_prior (and summed log π of
        the model that drew them, None for the prior's own); the fit is recorded and applied."""
        if not isinstance(self.solver, DistributionalSolver):
            raise TypeError("only the distributional solver fits its multipliers on samples")
        features = constraint_features(tokens, self.shaping, setup, self.baseline, self.scales, log_prior)
        log_weights = None if log_policy is None else np.asarray(log_prior) - np.asarray(log_policy)
        self.solver.fit(features / np.array([self.relative[t.name] for t in self.shaping]), log_weights)
        fitted = self.solver.last_fit
        record = {
            "step": int(step),
            "samples": "prior" if log_policy is None else "policy",
            "multipliers": dict(self.solver.multipliers),
            "effective_sample_size": fitted.effective_sample_size if fitted is not None else math.nan,
        }
        self.fits.append(record)
        self.apply()
        return record

    def apply(self) -> None:
        """Write the solver's multipliers into the reward set's weights."""
        if self.rewards is not None and self.shaping:
            self.rewards.set_weights(self.solver.multipliers)

    def update(self, slacks: Mapping[str, float]) -> dict[str, float]:
        multipliers = self.solver.update(slacks)
        self.history.append(dict(multipliers))
        self.apply()
        return multipliers

    # ---------------------------------------------------------------------------------------- selection
    def missed(self, stats: Mapping[str, float], baseline: Mapping[str, float]) -> list[str]:
        """The targets an evaluation misses, in words (a NaN or absent figure misses)."""
        return [
            f"{t} ({t.statistic} {stats.get(t.statistic, float('nan')):.4g})"
            for t in self.targets
            if not t.met(float(stats.get(t.statistic, float("nan"))), baseline)
        ]

    def shortfall(self, stats: Mapping[str, float], baseline: Mapping[str, float]) -> float:
        """How far an evaluation misses the targets, each relative to its bound, summed (0: all met)."""
        total = 0.0
        for target in self.targets:
            value = float(stats.get(target.statistic, float("nan")))
            total += relative_shortfall(-target.slack(value, baseline), target.bound(baseline))
        return total

    @property
    def infeasible(self) -> list[str]:
        return list(self.solver.infeasible)

    # ------------------------------------------------------------------------------------------ records
    def state_dict(self) -> dict[str, Any]:
        return {
            "solver": self.solver_name,
            "state": self.solver.state_dict(),
            "history": self.history,
            "fits": self.fits,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            return  # a checkpoint from before targets: the multipliers start at 0
        if state.get("solver") != self.solver_name:
            raise ValueError(
                f"the checkpoint was trained with --solver {state.get('solver')}; resume with the same solver"
            )
        self.solver.load_state_dict(state["state"])
        self.history = [dict(h) for h in state.get("history", [])]
        self.fits = [dict(f) for f in state.get("fits", [])]
        self.apply()

    def summary(self, stats: Mapping[str, Any] | None, baseline: Mapping[str, float] | None) -> dict[str, Any]:
        """run.json's ``targets`` section: per target its figure and 95% interval, bound, multiplier, met."""
        stats = stats or {}
        infeasible = set(self.infeasible)
        rows = []
        for target in self.targets:
            value = stats.get(target.statistic)
            try:
                bound = target.bound(baseline)
            except ValueError:
                bound = float("nan")
            rows.append(
                {
                    "target": str(target),
                    "statistic": target.statistic,
                    "bound": bound,
                    "figure": value,
                    "ci95": stats.get(f"{target.statistic}_ci95"),
                    "multiplier": self.solver.multipliers.get(target.name),
                    "met": bool(value is not None and target.met(float(value), baseline)),
                    "shapes_reward": target in self.shaping,
                    "infeasible": target.name in infeasible,
                }
            )
        warnings = [
            f"target {row['target']} looks infeasible: its multiplier kept growing "
            f"(now {row['multiplier']:.3g}) without the target coming within reach; loosen it or allow more KL"
            for row in rows
            if row["infeasible"]
        ]
        summary = {"solver": self.solver_name, "targets": rows, "warnings": warnings}
        if self.fits:
            summary["fits"] = self.fits
        return summary


class TargetCallback(BaseCallback):
    """Resolve the targets once the untuned baseline exists (after the step-0 evaluation), then after each
    rollout update the multipliers from the constraint terms' means (their slacks) and log them as
    ``targets/<name>/slack`` and ``targets/<name>/multiplier``."""

    def __init__(
        self,
        targets: RunTargets,
        baseline: Callable[[], Mapping[str, float] | None],
        sample_prior: PriorSamples,
        setup: Any,
        sample_policy: PolicySamples | None = None,
        refit_every: int = 0,
    ) -> None:
        super().__init__()
        self.targets, self.baseline, self.sample_prior, self.setup = targets, baseline, sample_prior, setup
        self.sample_policy, self.refit_every = sample_policy, refit_every
        self.next_refit = 0

    @property
    def refits(self) -> bool:
        return bool(
            self.targets.shaping
            and self.targets.solver_name == "distributional"
            and self.refit_every > 0
            and self.sample_policy is not None
        )

    def _on_training_start(self) -> None:
        baseline = self.baseline()
        if baseline is None:
            raise RuntimeError("the targets need the untuned baseline: evaluate before the target callback runs")
        self.targets.resolve(baseline, self.sample_prior, self.setup)
        if self.refits:
            self.next_refit = (self.model.num_timesteps // self.refit_every + 1) * self.refit_every

    def refit(self) -> None:
        """λ fitted again on the policy's own compositions (a seed per step, so a resumed run draws the same)."""
        step = self.model.num_timesteps
        tokens, log_prior, log_policy = self.sample_policy(self.targets.prior_samples, step)
        record = self.targets.fit(step, tokens, log_prior, log_policy, self.setup)  # applied to the reward set
        self.logger.record("targets/effective_sample_size", record["effective_sample_size"])
        self.next_refit = (step // self.refit_every + 1) * self.refit_every

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        stats = getattr(self.model, "last_rollout_stats", {})
        names = [t.name for t in self.targets.shaping]
        if not names:
            return
        if self.refits and self.model.num_timesteps >= self.next_refit:
            self.refit()
        slacks = {name: float(stats.get(f"rewards/{name}/mean", math.nan)) for name in names}
        multipliers = (
            self.targets.update(slacks) if self.targets.solver_name == "lagrangian" else self.targets.solver.multipliers
        )
        for target in self.targets.shaping:
            tag = f"targets/{target.name.removeprefix('target_')}"  # e.g. targets/rest_share_min/multiplier
            self.logger.record(f"{tag}/slack", slacks[target.name])
            self.logger.record(f"{tag}/multiplier", multipliers[target.name])
            self.logger.record(f"{tag}/bound", self.targets.bounds.get(target.name, math.nan))
