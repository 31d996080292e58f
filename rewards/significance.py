"""Significance of a difference between two evaluations: a two-proportion z test for rates, Mann-Whitney U for
per-melody figures (uncorrected p-values, as the report prints them)."""

from __future__ import annotations

import math

import numpy as np

from .evaluation import Evaluation, Metric


def two_proportion_p_value(events_a: float, trials_a: float, events_b: float, trials_b: float) -> float:
    """Two-sided p of a two-proportion z test (pooled variance); NaN without trials."""
    if trials_a <= 0 or trials_b <= 0:
        return float("nan")
    pooled = (events_a + events_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    difference = events_a / trials_a - events_b / trials_b
    if spread == 0:
        return 1.0 if difference == 0 else 0.0
    return math.erfc(abs(difference / spread) / math.sqrt(2))


def p_value(a: Metric, b: Metric) -> float:
    """Two-sided p-value for a difference between two sample sets in this metric.

    Rates: two-proportion z test on the pooled counts; figures: Mann-Whitney U test on the per-unit values.
    """
    if a.info.kind == "rate":
        return two_proportion_p_value(a.numerator.sum(), a.denominator.sum(), b.numerator.sum(), b.denominator.sum())
    from scipy.stats import mannwhitneyu

    x, y = a.per_unit(), b.per_unit()
    if x.size == 0 or y.size == 0:
        return float("nan")
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0  # every value equal: no evidence of a difference
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def compare_evaluations(baseline: Evaluation, other: Evaluation) -> dict[str, float]:
    """p-values of every metric both sets have, ``other`` against ``baseline``."""
    return {
        name: p_value(baseline.metrics[name], metric)
        for name, metric in other.metrics.items()
        if name in baseline.metrics
    }
