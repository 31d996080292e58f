"""The SB3 callback that watches a tuning run: progress bar, evaluations, best checkpoint, training
checkpoints, time budget, reward-hacking alarms and early stopping."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from notetune.pretrained.checkpoint import save_checkpoint
from stable_baselines3.common.callbacks import BaseCallback

from .alarms import check_alarms
from .checkpoints import save_training_checkpoint
from .watch import evaluate_model

if TYPE_CHECKING:
    from .run import TuneRun

logger = logging.getLogger(__name__)
EVAL_SEED = 12345
"""Offset of every evaluation's sampling seed from the run's: the same batch each time, so checkpoints compare."""
CONFIRM_SEED = 54321
"""Offset of the confirmation batch's seed: independent of the batch that nominated the checkpoint."""


class TuneCallback(BaseCallback):
    def __init__(self, run: TuneRun) -> None:
        super().__init__()
        self.run = run
        config = run.config
        self.started = time.monotonic()
        self.start_steps = run.algorithm.num_timesteps
        self.next_eval = self._next_multiple(self.start_steps, config.eval_every)
        self.next_checkpoint = self._next_multiple(self.start_steps, config.checkpoint_every)
        self.stop_reason: str | None = None
        self.alarms: list[dict[str, Any]] = run.alarms
        self.progress = None
        self.task = None

    @staticmethod
    def _next_multiple(step: int, every: int) -> int:
        return (step // every + 1) * every

    @property
    def steps_this_session(self) -> int:
        return self.run.algorithm.num_timesteps - self.start_steps

    @property
    def elapsed(self) -> float:
        return self.run.elapsed_before + time.monotonic() - self.started

    # --------------------------------------------------------------------------- SB3 hooks
    def _on_training_start(self) -> None:
        if self.run.config.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
                total=self.run.config.steps,
                completed=self.run.algorithm.num_timesteps,
                algo=self.run.config.algo,
                speed=0.0,
                reward=0.0,
                kl=0.0,
                beta=0.0,
            )
        if self.run.algorithm.num_timesteps == 0:
            self.evaluate()

    def _on_step(self) -> bool:
        return self.stop_reason is None

    def _on_rollout_end(self) -> None:
        self.after_update_window()

    def after_update_window(self) -> None:
        """Called after each rollout (ppo/a2c) or every few thousand steps (dqn family)."""
        algorithm = self.run.algorithm
        steps = algorithm.num_timesteps
        stats = getattr(algorithm, "last_rollout_stats", {})
        if self.progress is not None:
            self.progress.update(
                self.task,
                completed=steps,
                speed=self.steps_this_session / max(time.monotonic() - self.started, 1e-9),
                reward=stats.get("rollout/env_reward_per_melody", 0.0),
                kl=stats.get("rollout/kl_per_melody", 0.0),
                beta=stats.get("rollout/beta", 0.0),
            )
        if steps >= self.next_eval:
            self.evaluate()
            self.next_eval = self._next_multiple(steps, self.run.config.eval_every)
        if steps >= self.next_checkpoint:
            self.save_checkpoint()
            self.next_checkpoint = self._next_multiple(steps, self.run.config.checkpoint_every)
        budget = self.run.config.max_minutes * 60
        if budget and self.elapsed >= budget and self.stop_reason is None:
            self.stop_reason = f"time budget of {self.run.config.max_minutes} minutes spent"

    # ------------------------------------------------------------------------------ actions
    def evaluate(self) -> None:
        run = self.run
        steps = run.algorithm.num_timesteps
        model = run.current_model()

        def sample_and_score(num: int, seed: int) -> dict[str, float]:
            return evaluate_model(
                model,
                run.prior,
                run.eval_rewards,
                num,
                run.config.length,
                seed=seed,
                key=run.key,
                primer=run.primer,
                allowed=run.allowed,
            )

        stats = sample_and_score(run.config.eval_size, run.config.seed + EVAL_SEED)
        confirm_size = run.config.confirm_size
        record = run.watcher.observe(
            steps,
            stats,
            confirm=(lambda: sample_and_score(confirm_size, run.config.seed + CONFIRM_SEED)) if confirm_size else None,
        )
        if record.get("confirmation"):
            for name, value in record["confirmation"]["stats"].items():
                self.logger.record(f"confirm/{name}", value)
        for name, value in stats.items():
            self.logger.record(f"eval/{name}", value)
        self.logger.record("eval/eligible", float(record["eligible"]))
        self.logger.record("eval/targets_missed", float(len(record["missed_targets"])))
        self.logger.dump(step=steps)
        if record["improved"]:
            save_checkpoint(model, run.out / "best", extra=run.checkpoint_extra(steps, run.watcher.best["stats"]))
        fired = check_alarms(
            stats,
            run.watcher.baseline or stats,
            run.config,
            getattr(run.algorithm, "last_rollout_stats", {}),
            run.eval_rewards.weights,
            run.corpus_rates,
        )
        for alarm in fired:
            alarm["step"] = steps
            self.alarms.append(alarm)
            logger.warning("reward-hacking alarm at step %d: %s", steps, alarm["message"])
            self.logger.record(f"alarms/{alarm['name']}", alarm["value"])
        if fired:
            self.logger.dump(step=steps)
            if run.config.stop_on_alarm and self.stop_reason is None:
                self.stop_reason = f"alarm: {fired[0]['message']} (--stop-on-alarm)"
        self._print_evaluation(steps, stats, record)
        if record["stop"] and self.stop_reason is None:
            self.stop_reason = record["stop"]

    def _print_evaluation(self, steps: int, stats: dict[str, float], record: dict) -> None:
        line = (
            f"step {steps:>9,}  music {stats['music_reward']:+7.2f}  KL {stats['kl_per_melody']:5.2f}  "
            f"log p {stats['log_prior_per_note']:+.3f}  tonic {stats['starts_with_tonic']:.0%}  "
            f"leaps {stats['leaps_resolved']:.0%}  holds {stats['hold_share']:.0%}  "
            f"rests {stats['rest_share']:.1%}  distinct {stats['distinct_melodies']:.1%}"
            + ("  *best*" if record["improved"] else "")
        )
        reasons = record["violations"] or record["missed_targets"]  # why it is not (or not fully) the best
        confirmation = record.get("confirmation")
        if confirmation and not record["improved"]:
            why = confirmation["violations"] or confirmation["missed_targets"] or ["less music reward than the best"]
            reasons = [f"not confirmed on a fresh batch: {why[0]}", *why[1:]]
        if reasons:
            line += f"  ({reasons[0]}" + (f"; {len(reasons) - 1} more)" if len(reasons) > 1 else ")")
        if self.progress is not None:
            self.progress.console.print(line)
        else:
            logger.info(line)

    def save_checkpoint(self) -> None:
        run = self.run
        algorithm = run.algorithm
        state = {
            "algorithm": algorithm.get_state(),
            "watcher": run.watcher.state_dict(),
            "elapsed_seconds": self.elapsed,
            "alarms": self.alarms,
            "generator": algorithm.generator.get_state().tolist() if hasattr(algorithm, "generator") else None,
        }
        save_training_checkpoint(
            run.out / "checkpoints",
            algorithm.num_timesteps,
            algorithm.policy,
            algorithm.policy.optimizer,
            state,
            buffers=algorithm.get_buffers() if hasattr(algorithm, "get_buffers") else None,
        )

    def finish(self) -> None:
        """Final evaluation and checkpoint (so a finished run also resumes as finished)."""
        last = self.run.watcher.history[-1]["step"] if self.run.watcher.history else -1
        if last != self.run.algorithm.num_timesteps:
            self.evaluate()
        self.save_checkpoint()
        if self.progress is not None:
            self.progress.stop()
