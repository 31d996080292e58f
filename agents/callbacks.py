"""The callbacks of a tuning run, one job each, in Stable-Baselines3's shapes.

- :class:`EvaluationCallback` (SB3's ``EvalCallback``): every ``every`` steps, evaluate the policy, let the
  :class:`~notetune.agents.selection.Watcher` judge it (confirming a would-be best on a fresh batch), log
  ``eval/*`` and ``confirm/*``, save a new best, then run the after-evaluation hooks (the alarms).
- :class:`CheckpointCallback`: every ``every`` steps, write a training checkpoint.
- :class:`StopTrainingOnTimeBudget`: stop once a wall-clock cap is spent (an optional cap; budgets are steps).
- :class:`ProgressBarCallback`: a rich progress bar.

Each takes explicit inputs (callables and numbers), so none of them knows the run that owns it. A callback that
ends training says why in ``stop_reason``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from .selection import Watcher

logger = logging.getLogger(__name__)

Figures = dict[str, float]
AfterEvaluation = Callable[[int, Figures, Figures, Any], "str | None"]
"""(step, figures, untuned figures, SB3 logger) → a reason to stop, or None."""


def next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` after ``step``."""
    return (step // every + 1) * every


@dataclass
class RunClock:
    """Wall time of a run across resumed sessions."""

    elapsed_before: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started


class StoppingCallback(BaseCallback):
    """A callback that can end training; ``stop_reason`` says why."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_reason: str | None = None

    def _on_step(self) -> bool:
        return self.stop_reason is None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason


class EvaluationCallback(StoppingCallback):
    """Evaluate every ``every`` steps (and at step 0), keep the best, stop on collapse or lost patience.

    ``evaluate(num, seed)`` returns the figures of ``num`` fresh compositions; ``save_best(step, figures)``
    writes the model that just became the best; ``print_line`` shows one line per evaluation.
    """

    def __init__(
        self,
        evaluate: Callable[[int, int], Figures],
        watcher: Watcher,
        *,
        every: int,
        eval_size: int,
        eval_seed: int,
        confirm_size: int,
        confirm_seed: int,
        save_best: Callable[[int, Figures], None],
        after_evaluation: Sequence[AfterEvaluation] = (),
        print_line: Callable[[str], None] = logger.info,
    ) -> None:
        super().__init__()
        self.evaluate_figures = evaluate
        self.watcher = watcher
        self.every = every
        self.eval_size, self.eval_seed = eval_size, eval_seed
        self.confirm_size, self.confirm_seed = confirm_size, confirm_seed
        self.save_best = save_best
        self.after_evaluation = list(after_evaluation)
        self.print_line = print_line
        self.next_evaluation = 0

    def _on_training_start(self) -> None:
        self.next_evaluation = next_multiple(self.model.num_timesteps, self.every)
        if self.watcher.baseline is None:  # the untuned figures come first (relative bounds and targets read them)
            self.evaluate()

    def _on_rollout_end(self) -> None:
        if self.model.num_timesteps >= self.next_evaluation:
            self.evaluate()
            self.next_evaluation = next_multiple(self.model.num_timesteps, self.every)

    def evaluated_last_at(self) -> int | None:
        return self.watcher.history[-1]["step"] if self.watcher.history else None

    def evaluate(self) -> None:
        step = self.model.num_timesteps
        figures = self.evaluate_figures(self.eval_size, self.eval_seed)
        confirm = (lambda: self.evaluate_figures(self.confirm_size, self.confirm_seed)) if self.confirm_size else None
        record = self.watcher.observe(step, figures, confirm=confirm)
        if record.get("confirmation"):
            for name, value in record["confirmation"]["stats"].items():
                self.logger.record(f"confirm/{name}", value)
        for name, value in figures.items():
            self.logger.record(f"eval/{name}", value)
        self.logger.record("eval/eligible", float(record["eligible"]))
        self.logger.record("eval/targets_missed", float(len(record["missed_targets"])))
        self.logger.dump(step=step)
        if record["improved"]:
            self.save_best(step, self.watcher.best["stats"])
        self.print_line(evaluation_line(step, figures, record))
        for hook in self.after_evaluation:
            reason = hook(step, figures, self.watcher.baseline or figures, self.logger)
            if reason:
                self.stop(reason)
        if record["stop"]:
            self.stop(record["stop"])


def evaluation_line(step: int, figures: Figures, record: dict[str, Any]) -> str:
    """One console line per evaluation, with why it is not (or not fully) the best."""
    line = (
        f"step {step:>9,}  music {figures.get('music_reward', float('nan')):+7.2f}  "
        f"KL {figures['kl_per_composition']:5.2f}  log p {figures['log_prior_per_token']:+.3f}  "
        f"tonic {figures['starts_with_tonic']:.0%}  leaps {figures['leaps_resolved']:.0%}  "
        f"holds {figures['hold_share']:.0%}  rests {figures['rest_share']:.1%}  "
        f"distinct {figures['distinct_melodies']:.1%}"
        + (f"  judge {figures['judge_share']:.1%}" if "judge_share" in figures else "")
        + ("  *best*" if record["improved"] else "")
    )
    reasons = record["violations"] or record["missed_targets"]
    confirmation = record.get("confirmation")
    if confirmation and not record["improved"]:
        why = confirmation["violations"] or confirmation["missed_targets"] or ["less music reward than the best"]
        reasons = [f"not confirmed on a fresh batch: {why[0]}", *why[1:]]
    if reasons:
        line += f"  ({reasons[0]}" + (f"; {len(reasons) - 1} more)" if len(reasons) > 1 else ")")
    return line


class CheckpointCallback(BaseCallback):
    """Call ``save()`` (a training checkpoint) every ``every`` steps."""

    def __init__(self, save: Callable[[], None], every: int) -> None:
        super().__init__()
        self.save, self.every = save, every
        self.next_checkpoint = 0

    def _on_training_start(self) -> None:
        self.next_checkpoint = next_multiple(self.model.num_timesteps, self.every)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.model.num_timesteps >= self.next_checkpoint:
            self.save()
            self.next_checkpoint = next_multiple(self.model.num_timesteps, self.every)


class StopTrainingOnTimeBudget(StoppingCallback):
    """Stop once ``max_minutes`` of wall time (over every session of the run) are spent; 0 = no cap."""

    def __init__(self, max_minutes: float, clock: RunClock) -> None:
        super().__init__()
        self.max_minutes, self.clock = max_minutes, clock

    def _on_rollout_end(self) -> None:
        if self.max_minutes and self.clock.elapsed() >= self.max_minutes * 60:
            self.stop(f"time cap of {self.max_minutes:g} minutes spent (--max-minutes)")


class ProgressBarCallback(BaseCallback):
    """A rich progress bar with steps/s, the rollout's reward, KL and β."""

    def __init__(self, total: int, algo: str, rollout_stats: Callable[[], dict[str, float]]) -> None:
        super().__init__()
        self.total, self.algo, self.rollout_stats = total, algo, rollout_stats
        self.progress: Any = None
        self.task: Any = None
        self.started = time.monotonic()
        self.start_steps = 0

    def print_line(self, line: str) -> None:
        """Print above the bar (or log when there is none)."""
        if self.progress is not None:
            self.progress.console.print(line)
        else:
            logger.info(line)

    def _on_training_start(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.started, self.start_steps = time.monotonic(), self.model.num_timesteps
        self.progress = Progress(
            TextColumn("[bold]tune {task.fields[algo]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[speed]:>8,.0f} steps/s  reward {task.fields[reward]:+.2f}  "
                "KL {task.fields[kl]:.2f}  β {task.fields[beta]:.2f}"
            ),
            TimeElapsedColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "tune",
            total=self.total,
            completed=self.model.num_timesteps,
            algo=self.algo,
            speed=0.0,
            reward=0.0,
            kl=0.0,
            beta=0.0,
        )

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        stats = self.rollout_stats()
        self.progress.update(
            self.task,
            completed=self.model.num_timesteps,
            speed=(self.model.num_timesteps - self.start_steps) / max(time.monotonic() - self.started, 1e-9),
            reward=stats.get("rollout/env_reward_per_composition", 0.0),
            kl=stats.get("rollout/kl_per_composition", 0.0),
            beta=stats.get("rollout/beta", 0.0),
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
