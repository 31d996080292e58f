"""A learned reward: a preference model's score of the finished composition, paid at its last step.

The scoring itself (a torch ensemble) lives outside ``rewards/``; this module only needs a *scorer*,
``scorer(tokens: (B, T) int array) -> (mean (B,), spread (B,))``. ``--reward learned:DIR`` finds one through
the ``learned`` reward prefix, which notetune's torch side registers (see :func:`registry.register_reward_prefix`).

Conservative by default: the paid reward is ``mean − spread_penalty · spread`` (Coste et al. 2024), so a
composition the ensemble members disagree on earns less than one they agree on — the cheapest defence
against a policy that hunts for the reward model's blind spots.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .core import RewardSetup, StepBatch

Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class LearnedReward:
    """At the last step: ``mean − spread_penalty · spread`` of the composition's score; 0 before."""

    name = "learned"

    def __init__(self, scorer: Scorer, spread_penalty: float = 1.0, setup: RewardSetup | None = None) -> None:
        if not np.isfinite(spread_penalty):
            raise ValueError(f"spread_penalty must be finite, got {spread_penalty}")
        self.scorer = scorer
        self.spread_penalty = float(spread_penalty)
        self.setup = setup if setup is not None else RewardSetup()

    def __call__(self, batch: StepBatch) -> np.ndarray:
        if not batch.is_last_step:
            return batch.zeros()
        mean, spread = self.scorer(batch.tokens)
        return np.asarray(mean, dtype=np.float64) - self.spread_penalty * np.asarray(spread, dtype=np.float64)
