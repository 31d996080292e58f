"""Choosing the exported checkpoint of a tuning run, and detecting collapse.

The figures come from the one evaluation pipeline (:func:`notetune.agents.evaluation.evaluate_policy`). Log p_prior
alone cannot see collapse (a held-tonic collapse *raises* it), so the bounds also look at distinct melodies and
distinct 4-grams, and compare hold and rest shares with the untuned model.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from notetune.rewards.evaluation import figure_names

IN_FORM = "_in_form"
"""Suffix of a soft-form run's baseline figures measured with the untuned model's compositions written into the
form (its returning phrases copied through the strict masks): what a relative bound on that figure reads."""
DISTINCT_4GRAM_IN_FORM = f"distinct_4gram{IN_FORM}"


def untuned_figure(baseline: Mapping[str, float], statistic: str) -> float | None:
    """The untuned model's figure a relative bound on ``statistic`` reads: in a soft-form run, its figure
    *written in the form* where one was measured (distinct_4gram: a piece whose phrases return repeats its
    4-grams by design; an AABA written by the untuned Lookback LSTM through the strict masks has 8.8% distinct
    4-grams against its free 12.0%, so against the free figure a model that learned the form would count as
    looping), else its free figure (None when not measured)."""
    return baseline.get(statistic + IN_FORM, baseline.get(statistic))


@dataclass
class SelectionRule:
    """Which checkpoint is "best": among evaluations inside these bounds (measured against the untuned model's
    evaluation), the one that misses the fewest statistic targets, then has the most music reward.

    Bounds keep the model safe (close to the prior, diverse, breathing); targets are what the run is for, e.g.
    RL Tuner Q's column of Table 1. A run that reaches no target still exports its best model within bounds."""

    max_kl: float
    """Largest KL(π‖prior) per composition (nats)."""
    min_distinct_melodies: float
    """Smallest share of distinct compositions."""
    min_distinct_4gram_ratio: float
    """Smallest distinct-4gram share relative to the untuned model."""
    min_hold_ratio: float
    """Smallest hold share relative to the untuned model."""
    min_rest_ratio: float
    """Smallest rest share relative to the untuned model."""
    max_log_prior_drop: float
    """Largest drop of mean log p_prior per token below the untuned model (nats)."""
    min_stats: dict[str, float] = field(default_factory=dict)
    """Targets: smallest value of named evaluation figures, e.g. {"starts_with_tonic": 0.288}."""
    max_stats: dict[str, float] = field(default_factory=dict)
    """Targets: largest value of named evaluation figures, e.g. {"not_in_key": 0.01}."""

    @classmethod
    def from_config(cls, config: Any) -> SelectionRule:
        """The rule a TuneConfig describes (its fields of the same names own the defaults)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    def check_names(self, reward_names: list[str] | tuple[str, ...] = ()) -> None:
        """Refuse a target that names no statistic (before a run starts), listing the known names."""
        known = figure_names(tuple(reward_names))
        for name in [*self.min_stats, *self.max_stats]:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ValueError(f"unknown statistic '{name}' in min_stats/max_stats{hint}; known: {', '.join(known)}")

    def describe_bounds(self) -> str:
        """The bounds in words, for run.json's "why"."""
        return (
            f"KL ≤ {self.max_kl} nats, distinct melodies ≥ {self.min_distinct_melodies}, "
            f"distinct-4gram ≥ {self.min_distinct_4gram_ratio}× untuned (written in the form, with a soft form), "
            f"hold share ≥ {self.min_hold_ratio}× and "
            f"rest share ≥ {self.min_rest_ratio}× untuned, log p_prior within {self.max_log_prior_drop} nat of untuned"
        )

    def describe_targets(self) -> str:
        """The targets in words ("" without targets)."""
        targets = [f"{name} ≥ {value:g}" for name, value in self.min_stats.items()]
        targets += [f"{name} ≤ {value:g}" for name, value in self.max_stats.items()]
        return ", ".join(targets)

    def violations(self, stats: dict[str, float], baseline: dict[str, float]) -> list[str]:
        """Human-readable reasons why an evaluation is out of bounds (empty if it is eligible)."""
        checks = [
            (stats["kl_per_composition"] <= self.max_kl, f"KL {stats['kl_per_composition']:.2f} > {self.max_kl}"),
            (
                stats["distinct_melodies"] >= self.min_distinct_melodies,
                f"distinct melodies {stats['distinct_melodies']:.3f} < {self.min_distinct_melodies}",
            ),
            (
                stats["distinct_4gram"] >= self.min_distinct_4gram_ratio * untuned_figure(baseline, "distinct_4gram"),
                f"distinct-4gram {stats['distinct_4gram']:.3f} < {self.min_distinct_4gram_ratio}× untuned",
            ),
            (
                stats["hold_share"] >= self.min_hold_ratio * baseline["hold_share"],
                f"hold share {stats['hold_share']:.3f} < {self.min_hold_ratio}× untuned",
            ),
            (
                stats["rest_share"] >= self.min_rest_ratio * baseline["rest_share"],
                f"rest share {stats['rest_share']:.4f} < {self.min_rest_ratio}× untuned",
            ),
            (
                stats["log_prior_per_token"] >= baseline["log_prior_per_token"] - self.max_log_prior_drop,
                f"log p_prior per token {stats['log_prior_per_token']:.3f} more than "
                f"{self.max_log_prior_drop} below untuned",
            ),
        ]
        return [reason for ok, reason in checks if not ok]

    def missed_targets(self, stats: dict[str, float]) -> list[str]:
        """The statistic targets this evaluation misses (a NaN statistic misses its target)."""
        missed = [
            f"{name} {stats[name]:.4g} < {low:g}" for name, low in self.min_stats.items() if not stats[name] >= low
        ]
        missed += [
            f"{name} {stats[name]:.4g} > {high:g}" for name, high in self.max_stats.items() if not stats[name] <= high
        ]
        return missed

    def shortfall(self, stats: dict[str, float]) -> float:
        """How far the missed statistic targets miss, summed relative to their bounds (0 when all are met)."""
        lows = [relative_shortfall(low - stats[name], low) for name, low in self.min_stats.items()]
        highs = [relative_shortfall(stats[name] - high, high) for name, high in self.max_stats.items()]
        return sum(lows) + sum(highs)


def relative_shortfall(miss: float, bound: float) -> float:
    """A target's shortfall relative to its bound: 0 when met, 1 when the figure is NaN."""
    if not math.isfinite(miss):
        return 1.0
    return max(0.0, miss) / max(abs(bound), 1e-9)


@dataclass(frozen=True)
class CollapseRule:
    """When an evaluation batch counts as collapsed (a run stops on it unless told not to)."""

    min_distinct_melodies: float
    """Below this share of distinct compositions."""
    min_distinct_4gram_ratio: float
    """Or below this fraction of the untuned model's distinct-4gram share."""

    @classmethod
    def from_config(cls, config: Any) -> CollapseRule:
        return cls(config.collapse_distinct_melodies, config.collapse_distinct_4gram_ratio)


def collapse_reasons(stats: dict[str, float], baseline: dict[str, float], rule: CollapseRule) -> list[str]:
    """Signs that the policy collapsed onto a few melodies (a run stops on these)."""
    reasons = []
    if stats["distinct_melodies"] < rule.min_distinct_melodies:
        reasons.append(f"only {stats['distinct_melodies']:.1%} of compositions are distinct")
    reference = untuned_figure(baseline, "distinct_4gram")
    if stats["distinct_4gram"] < rule.min_distinct_4gram_ratio * reference:
        reasons.append(f"distinct-4gram share fell to {stats['distinct_4gram']:.3f} (untuned {reference:.3f})")
    return reasons


@dataclass
class Watcher:
    """Keeps the evaluation history, the best eligible evaluation and the early-stopping count."""

    rule: SelectionRule
    collapse: CollapseRule
    patience: int
    stop_on_collapse: bool
    baseline: dict[str, float] | None = None
    targets: Any = None
    """The run's :class:`~notetune.agents.target_run.RunTargets` (None without targets): they count as targets."""
    least_kl: bool = False
    """Break ties in targets met by the least KL to the prior instead of the most music reward (target runs)."""
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    stale: int = 0

    def better(self, stats: dict[str, float], missed: list[str]) -> bool:
        """Whether an evaluation within bounds beats the best so far: fewer missed targets, then a smaller
        shortfall of the missed ones (:meth:`shortfall`), then more reward (with ``least_kl``: less KL)."""
        best = self.best
        if best is None:
            return True
        tie = "kl_per_composition" if self.least_kl else "music_reward"
        sign = -1.0 if self.least_kl else 1.0
        return (-len(missed), -self.shortfall(stats), sign * stats[tie]) > (
            -len(best["missed"]),
            -self.shortfall(best["stats"]),
            sign * best["stats"][tie],
        )

    def shortfall(self, stats: dict[str, float]) -> float:
        """How far an evaluation misses its targets, each relative to its bound, summed: between two that miss
        as many, the one nearer to meeting them (missing 0.912 of 0.92 is not missing 0.81)."""
        total = self.rule.shortfall(stats)
        if self.targets is not None:
            total += self.targets.shortfall(stats, self.baseline or stats)
        return total

    def missed_targets(self, stats: dict[str, float]) -> list[str]:
        """Selection targets (min_stats/max_stats) and run targets this evaluation misses."""
        missed = self.rule.missed_targets(stats)
        if self.targets is not None:
            missed += self.targets.missed(stats, self.baseline or stats)
        return missed

    def observe(
        self, step: int, stats: dict[str, float], confirm: Callable[[], dict[str, float]] | None = None
    ) -> dict:
        """Record an evaluation; returns {"eligible", "violations", "missed_targets", "improved", "collapse",
        "stop"} and, when ``confirm`` was called, "confirmation".

        ``confirm`` evaluates the same policy on a fresh batch. It is called only for an evaluation that would
        become the best, and that evaluation is then judged (bounds, targets, reward) on the fresh batch alone:
        the maximum of many noisy evaluations overstates its own figures (the winner's curse), so the batch that
        nominated a checkpoint cannot also certify it. The first evaluation (the untuned model) becomes the
        baseline of the relative bounds; with ``confirm`` the baseline is measured on the larger fresh batch.
        """
        confirmed = None
        if self.baseline is None:
            confirmed = dict(confirm()) if confirm is not None else None
            self.baseline = dict(confirmed or stats)
        violations = self.rule.violations(stats, self.baseline)
        missed = self.missed_targets(stats)
        collapse = collapse_reasons(stats, self.baseline, self.collapse)
        eligible = not violations
        improved = eligible and self.better(stats, missed)
        if improved and confirm is not None and confirmed is None:
            confirmed = dict(confirm())
        confirmation = None
        chosen_stats, chosen_missed = stats, missed
        if confirmed is not None:
            confirmation = {
                "stats": confirmed,
                "violations": self.rule.violations(confirmed, self.baseline),
                "missed_targets": self.missed_targets(confirmed),
            }
            if improved:
                improved = not confirmation["violations"] and self.better(confirmed, confirmation["missed_targets"])
                chosen_stats, chosen_missed = confirmed, confirmation["missed_targets"]
        if improved:
            self.best = {"step": step, "stats": dict(chosen_stats), "missed": chosen_missed}
            self.stale = 0
        elif step > 0 and self.best is not None and self.best["step"] > 0:
            self.stale += 1  # the clock starts at the first tuned checkpoint chosen, not at the untuned model
        stop_reason = None
        if collapse and self.stop_on_collapse:
            stop_reason = "collapse: " + "; ".join(collapse)
        elif self.patience and self.stale >= self.patience:
            stop_reason = f"no better eligible checkpoint in {self.patience} evaluations"
        record = {
            "step": step,
            "stats": dict(stats),
            "eligible": eligible,
            "violations": violations,
            "missed_targets": missed,
            "improved": improved,
            "collapse": collapse,
            "stop": stop_reason,
        }
        if confirmation is not None:
            record["confirmation"] = confirmation
        self.history.append(record)
        return record

    def state_dict(self) -> dict:
        return {"baseline": self.baseline, "history": self.history, "best": self.best, "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        self.baseline = state["baseline"]
        self.history = state["history"]
        self.best = state["best"] and {"missed": [], **state["best"]}
        self.stale = int(state["stale"])
