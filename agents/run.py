"""A tuning run end to end: build from a TuneConfig, train with watching and checkpoints, resume after a
crash, export the chosen checkpoint and write ``run.json``."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from notetune.pretrained.checkpoint import (
    checkpoint_sha256,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from notetune.pretrained.constraints import control_inputs
from notetune.pretrained.corpus import DEFAULT_CORPUS, load_corpus
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.piece import piece_from_config
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.transpose import PRIOR_KEY, transpose_to_key
from notetune.pretrained.vocab import HOLD, REST
from notetune.rewards.evaluation import distinct_4gram_share, music_reward_per_composition
from notetune.rewards.keys import Key
from notetune.rewards.listener import judge_preference_share, judge_scores, load_judge
from notetune.rewards.metrics import NoteNgramIndex
from notetune.rewards.reward_set import RewardSet
from stable_baselines3.common.callbacks import CallbackList

from .alarms import AlarmCheck
from .algorithms import FAST_PATH, build_algorithm
from .callbacks import (
    CheckpointCallback,
    EvaluationCallback,
    ProgressBarCallback,
    RunClock,
    StoppingCallback,
    StopTrainingOnTimeBudget,
)
from .checkpoints import Resumable, TrainingState, load_latest_checkpoint, save_training_checkpoint
from .config import ALGORITHMS, TuneConfig, reward_spec, shipped_prior, with_length_defaults
from .evaluation import evaluate_policy
from .run_record import chosen_evaluation, git_commit, package_versions, why_chosen, write_run_record
from .selection import DISTINCT_4GRAM_IN_FORM, CollapseRule, SelectionRule, Watcher
from .target_run import RunTargets, TargetCallback

logger = logging.getLogger(__name__)
CONFIG_FILE = "config.json"


class TuneError(UserInputError):
    """A tuning run cannot start (bad config, missing files, mismatched checkpoint)."""


class TuneRun:
    """Everything one run owns. Construction validates all inputs before any training work."""

    def __init__(self, config: TuneConfig, resume: bool = False) -> None:
        self.config = config
        self.out = Path(config.out)
        if config.algo not in ALGORITHMS:
            raise TuneError(f"unknown algorithm {config.algo!r}; choose from {', '.join(ALGORITHMS)}")
        if config.algo == "dpo":
            raise TuneError(
                "--algo dpo learns from preference pairs without RL: it runs through notetune.agents.dpo.tune_dpo "
                "(as `notetune tune --algo dpo` does) in one pass, so a DPO run cannot be resumed; start a new one"
            )
        if config.preferences:
            raise TuneError(
                f"--preferences is read by --algo dpo only; to tune {config.algo} on preferences, fit a reward "
                "model (`notetune reward fit`) and tune with --reward learned:DIR"
            )
        if config.steps <= 0 or config.num_envs <= 0:
            raise TuneError(f"--steps and --num-envs must be positive (got {config.steps} and {config.num_envs})")
        if not resume and (self.out / CONFIG_FILE).exists():
            raise TuneError(
                f"{self.out} already holds a run; resume it with `notetune tune --resume {self.out}` "
                "or choose another --out"
            )
        torch.set_num_threads(config.threads)
        self.key = Key.parse(config.key)
        # 'auto' names a shipped prior by the piece's length (of the shipped vocabulary's meter: priors agree on it).
        self.config = config = replace(config, prior=shipped_prior(config.prior, piece_from_config(config).length))
        self.prior_dir = find_checkpoint(config.prior)
        self.prior, self.prior_config = load_checkpoint(self.prior_dir)
        # The prior writes in the key its checkpoint records (C major / A minor if none): shift it to the run's.
        self.prior = transpose_to_key(self.prior, Key.parse(self.prior_config.get("key") or PRIOR_KEY), self.key)
        self.piece = piece_from_config(config, self.prior.vocab)
        self.length = self.piece.length
        self.config = config = with_length_defaults(config, self.length)
        self.primer, self.allowed = control_inputs(config.primer, config.constraint, self.length, self.prior.vocab)
        if config.position_bias and config.algo not in FAST_PATH:
            raise TuneError(
                f"--position-bias needs --algo ppo, a2c, grpo or rloo (their policy carries it); {config.algo} "
                "learns a Q-network on the prior's outputs"
            )
        if (self.primer is not None or self.allowed is not None or self.piece.strict) and config.algo not in FAST_PATH:
            raise TuneError(
                f"--primer, --constraint and --form-strict need --algo ppo, a2c, grpo or rloo (their policy reads the "
                f"primer and masks its actions); {config.algo} explores with unmasked random actions"
            )
        self.corpus_path = DEFAULT_CORPUS if config.corpus == "default" else Path(config.corpus)
        self.corpus = load_corpus(self.corpus_path) if config.corpus != "none" else None
        if self.corpus is not None and self.corpus.vocab != self.prior.vocab:
            raise TuneError(
                f"corpus {self.corpus_path} uses vocabulary {self.corpus.vocab} but the prior "
                f"{self.prior_dir} uses {self.prior.vocab}"
            )
        self.judge = load_judge(config.judge) if config.judge else None
        self.judge_baselines: dict[tuple[int, int], np.ndarray] = {}
        music = self.build_rewards()
        try:  # targets name evaluation figures: refuse an unknown one (did you mean) before any work
            self.targets = RunTargets.from_config(config, list(music.weights), self.corpus is not None)
        except ValueError as error:
            raise TuneError(str(error)) from None
        try:
            self.rewards = self.targets.add_terms(music)
        except ValueError as error:  # a target the pieces cannot have (e.g. a form's figure without a form)
            raise TuneError(str(error)) from None
        self.check_rewards()
        rule = SelectionRule.from_config(config)
        try:
            rule.check_names(list(self.rewards.weights))
        except ValueError as error:
            raise TuneError(str(error)) from None
        self.watcher = Watcher(
            rule,
            CollapseRule.from_config(config),
            patience=config.patience,
            stop_on_collapse=config.stop_on_collapse,
            targets=self.targets if self.targets.targets else None,
            least_kl=self.drops_music_reward,
        )
        self.clock = RunClock()
        self.alarms: list[dict[str, Any]] = []
        self.corpus_index = (
            NoteNgramIndex.from_flat(self.corpus.tokens, self.corpus.offsets) if self.corpus is not None else None
        )
        self.corpus_rates = corpus_rates(self.corpus, self.length) if self.corpus is not None else None
        self.algorithm: Resumable = self.build_algorithm()
        self.resumed_from: str | None = None

    # -------------------------------------------------------------------------------- building
    @property
    def drops_music_reward(self) -> bool:
        """With --target (and no --keep-reward) the objective is least KL subject to the targets alone."""
        return bool(self.config.target or self.config.targets) and not self.config.keep_reward

    def build_rewards(self) -> RewardSet:
        """The music reward set (empty when the targets replace it); the training set adds the target terms."""
        rewards = RewardSet.from_spec(
            self.reward_spec,
            self.config.weights,
            key=self.key,
            vocab=self.prior.vocab,
            length=self.length,
            corpus=self.corpus.melodies() if self.corpus is not None else None,
            meter=self.piece.meter,
            form=self.piece.form,
            phrase_bars=self.piece.phrase_bars or 0,
        )
        return RewardSet([], {}, rewards.setup) if self.drops_music_reward else rewards

    def sample_prior(self, num: int) -> tuple[np.ndarray, np.ndarray]:
        """``num`` of the prior's compositions and their summed log p_prior (what the targets are fitted on)."""
        tokens, log_prior, _ = self.sample_scored(self.prior, num, self.config.seed + self.config.eval_seed + 1)
        return tokens, log_prior

    def sample_policy(self, num: int, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``num`` of the current policy's compositions (a seed per ``step``) with their summed log p_prior and
        summed log π (what the distributional solver re-fits its multipliers on)."""
        return self.sample_scored(self.current_model(), num, self.config.seed + self.config.eval_seed + 2 + step)

    def sample_scored(self, model: NoteRNN, num: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``num`` of ``model``'s compositions (primer and constraints applied) with their summed log p_prior
        and their summed log-probability under ``model``."""
        tokens, log_model = sample_tokens(
            model, num, self.length, seed=seed, return_log_probs=True, primer=self.primer, allowed=self.allowed
        )
        log_prior = token_log_probs(self.prior, tokens, primer=self.primer, allowed=self.allowed)
        return tokens, np.asarray(log_prior, np.float64).sum(axis=1), np.asarray(log_model, np.float64).sum(axis=1)

    @property
    def reward_spec(self) -> list[str]:
        """What the run trains with: --reward, or the default for its length, plus 'form' with --form."""
        return reward_spec(self.config, self.length)

    def check_rewards(self) -> None:
        """Score a few of the prior's compositions with a throw-away reward set (with the prior's log-probabilities,
        as the environment passes them), so a plugin that raises or returns NaN fails here, before the run
        directory exists."""
        form = self.piece.strict_layout
        tokens = sample_tokens(
            self.prior, 8, self.length, seed=self.config.seed, primer=self.primer, allowed=self.allowed, form=form
        )
        log_prior = token_log_probs(self.prior, tokens, primer=self.primer, allowed=self.allowed, form=form)
        music_reward_per_composition(self.build_rewards(), tokens, log_prior)
        if self.judge is not None:
            judge_scores(self.judge, tokens)  # a judge that fails or returns the wrong shape fails here too

    def build_algorithm(self) -> Resumable:
        fixed_beta = self.config.solver == "distributional" and bool(self.targets.shaping)
        try:
            return build_algorithm(
                self.config, self.prior, self.rewards, self.length, self.primer, self.allowed, self.piece, fixed_beta
            )
        except ValueError as error:  # settings the algorithm refuses (e.g. a group size that does not divide)
            raise TuneError(str(error)) from None

    # ------------------------------------------------------------------------------------ model
    def current_model(self) -> NoteRNN:
        """The policy as a stand-alone sampling model (what would be exported now)."""
        return self.algorithm.policy.export_actor()

    def evaluate(self, num: int, seed_offset: int) -> dict[str, float]:
        """Figures of ``num`` compositions of the current policy, seed = run seed + ``seed_offset``. A fresh
        reward set scores them, so an evaluation never changes the state of the set that trains."""
        evaluation = evaluate_policy(
            self.current_model(),
            self.prior,
            num=num,
            length=self.length,
            seed=self.config.seed + seed_offset,
            key=self.key,
            primer=self.primer,
            allowed=self.allowed,
            piece=self.piece,
            rewards=self.build_rewards(),
            corpus_index=self.corpus_index,
            resamples=self.config.eval_resamples,
        )
        figures = evaluation.figures()
        for name, metric in evaluation.metrics.items():  # 95% intervals travel with the figures into run.json
            figures[f"{name}_ci95"] = [metric.low, metric.high]
        if self.judge is not None:
            figures["judge_share"] = judge_preference_share(
                self.judge, evaluation.tokens, self.judge_baseline(num, seed_offset)
            )
        soft_form = self.piece.layout is not None and self.piece.strict_layout is None
        if soft_form and self.watcher.baseline is None:  # the untuned figures: also diversity in the form
            figures[DISTINCT_4GRAM_IN_FORM] = self.distinct_4gram_in_form(num, self.config.seed + seed_offset)
        return figures

    def distinct_4gram_in_form(self, num: int, seed: int) -> float:
        """Distinct-4gram share of ``num`` of the prior's compositions written into the run's form (its returning
        phrases copied through the strict masks): the reference of a soft-form run's diversity bounds."""
        tokens = sample_tokens(
            self.prior, num, self.length, seed=seed, primer=self.primer, allowed=self.allowed, form=self.piece.layout
        )
        return distinct_4gram_share(tokens, seed=seed)

    def judge_baseline(self, num: int, seed_offset: int) -> np.ndarray:
        """The untuned prior's compositions the judge compares an evaluation's with: as many, sampled as the
        policy is (primer, constraints, strict form) from another seed, drawn once per batch."""
        if (num, seed_offset) not in self.judge_baselines:
            self.judge_baselines[(num, seed_offset)] = sample_tokens(
                self.prior,
                num,
                self.length,
                seed=self.config.seed + seed_offset + 1,
                primer=self.primer,
                allowed=self.allowed,
                form=self.piece.strict_layout,
            )
        return self.judge_baselines[(num, seed_offset)]

    def save_best(self, step: int, figures: dict[str, Any]) -> None:
        save_checkpoint(self.current_model(), self.out / "best", extra=self.checkpoint_extra(step, figures))

    def training_state(self) -> TrainingState:
        algorithm = self.algorithm
        return TrainingState(
            algorithm=algorithm.get_state(),
            watcher=self.watcher.state_dict(),
            elapsed_seconds=self.clock.elapsed(),
            alarms=self.alarms,
            generator=algorithm.generator.get_state().tolist(),
            buffers=algorithm.get_buffers(),
            targets=self.targets.state_dict(),
        )

    def save_training_checkpoint(self) -> None:
        algorithm = self.algorithm
        save_training_checkpoint(
            self.out / "checkpoints",
            algorithm.num_timesteps,
            algorithm.policy,
            algorithm.policy.optimizer,
            self.training_state(),
        )

    def restore(self, state: TrainingState) -> None:
        """Continue from a training checkpoint (weights and optimizer are restored by the loader)."""
        self.algorithm.set_state(state.algorithm)
        self.algorithm.set_buffers(state.buffers)
        self.watcher.load_state_dict(state.watcher)
        self.clock = RunClock(elapsed_before=state.elapsed_seconds)
        self.alarms = list(state.alarms)
        if state.generator:
            self.algorithm.generator.set_state(torch.tensor(state.generator, dtype=torch.uint8))
        try:
            self.targets.load_state_dict(state.targets)
        except ValueError as error:
            raise TuneError(str(error)) from None
        self.resumed_from = state.path

    # ------------------------------------------------------------------------------------ train
    def callbacks(self) -> tuple[list[StoppingCallback], ProgressBarCallback | None, CallbackList]:
        """The run's callbacks, one job each: evaluate and select, checkpoint, cap the time, show progress."""
        config = self.config

        def rollout_stats() -> dict[str, float]:
            return getattr(self.algorithm, "last_rollout_stats", {})

        progress = ProgressBarCallback(config.steps, config.algo, rollout_stats) if config.progress else None
        alarms = AlarmCheck(config, self.rewards.weights, self.corpus_rates, rollout_stats, self.alarms)
        evaluation = EvaluationCallback(
            self.evaluate,
            self.watcher,
            every=config.eval_every,
            eval_size=config.eval_size,
            eval_seed=config.eval_seed,
            confirm_size=config.confirm_size,
            confirm_seed=config.confirm_seed,
            save_best=self.save_best,
            after_evaluation=[alarms],
            print_line=progress.print_line if progress is not None else logger.info,
        )
        stopping = [evaluation, StopTrainingOnTimeBudget(config.max_minutes, self.clock)]
        checkpoint = CheckpointCallback(self.save_training_checkpoint, config.checkpoint_every)
        # After the evaluation callback, whose step-0 evaluation measures the baseline the targets read.
        targets = TargetCallback(
            self.targets,
            lambda: self.watcher.baseline,
            self.sample_prior,
            self.rewards.setup,
            sample_policy=self.sample_policy,
            refit_every=config.refit_every,
        )
        listed = [*([progress] if progress else []), *stopping, targets, checkpoint]
        return stopping, progress, CallbackList(listed)

    def run(self) -> dict[str, Any]:
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
        tmp.replace(self.out / CONFIG_FILE)
        from stable_baselines3.common.logger import configure

        self.algorithm.set_logger(configure(str(self.out / "tensorboard"), ["tensorboard"]))
        remaining = config.steps - self.algorithm.num_timesteps
        stopping, progress, callbacks = self.callbacks()
        evaluation = stopping[0]
        session_start, started = self.algorithm.num_timesteps, time.monotonic()
        try:
            if remaining > 0:
                self.algorithm.learn(
                    total_timesteps=remaining,
                    callback=callbacks,
                    reset_num_timesteps=self.algorithm.num_timesteps == 0,
                    log_interval=1,
                )
            else:
                callbacks.init_callback(self.algorithm)
            if evaluation.evaluated_last_at() != self.algorithm.num_timesteps:
                evaluation.evaluate()  # the final policy, so a finished run also resumes as finished
            self.save_training_checkpoint()
        finally:
            if progress is not None:
                progress.close()
        stop_reason = next((c.stop_reason for c in stopping if c.stop_reason), None)
        seconds = time.monotonic() - started
        steps_per_second = (self.algorithm.num_timesteps - session_start) / max(seconds, 1e-9)
        return self.finish(stop_reason, seconds, steps_per_second)

    def finish(self, stop_reason: str | None, seconds: float, steps_per_second: float) -> dict[str, Any]:
        best = chosen_evaluation(self.watcher)
        chosen_dir = self.out / "best"
        export_dir = self.out / "model"
        if best is not None and (chosen_dir / "model.safetensors").is_file() and not best.get("fallback"):
            source = chosen_dir
        else:
            source = None
        if source is not None:
            if export_dir.exists():
                shutil.rmtree(export_dir)
            shutil.copytree(source, export_dir)
        else:
            self.export(export_dir, step=self.algorithm.num_timesteps, stats=best["stats"] if best else {})
        why = why_chosen(best, self.watcher, self.targets_text())
        total_seconds = self.clock.elapsed_before + seconds
        record = {
            "config": asdict(self.config),
            "git_commit": git_commit(),
            "versions": package_versions(),
            "seed": self.config.seed,
            "prior": {"path": str(self.prior_dir), "sha256": checkpoint_sha256(self.prior_dir)},
            "corpus": {"path": str(self.corpus_path), "sha256": self.corpus.sha256 if self.corpus else None},
            "steps": self.algorithm.num_timesteps,
            "seconds": round(total_seconds, 1),
            "steps_per_second": round(steps_per_second, 1),
            "stop_reason": stop_reason or "completed the configured steps",
            "budget": {
                "steps": self.config.steps,
                "max_minutes": self.config.max_minutes,
                "cut_short_by_time_cap": bool(stop_reason and stop_reason.startswith("time cap")),
            },
            "resumed_from": self.resumed_from,
            "reward_spec": self.reward_spec,
            "piece": self.piece.settings(),
            "chosen": {"step": best["step"] if best else None, "why": why, "path": str(export_dir)},
            "untuned": self.watcher.baseline,
            "final_metrics": best["stats"] if best else None,
            "alarms": self.alarms,
            "evaluations": self.watcher.history,
        }
        if self.targets.targets:
            record["targets"] = self.targets.summary(best["stats"] if best else None, self.watcher.baseline)
            for warning in record["targets"]["warnings"]:
                logger.warning(warning)
        write_run_record(self.out / "run.json", record)
        return record

    def targets_text(self) -> str:
        return ", ".join(str(t) for t in self.targets.targets)

    def checkpoint_extra(self, step: int, stats: dict[str, Any]) -> dict[str, Any]:
        """What a tuned checkpoint's config.json says besides the architecture."""
        return {
            "key": str(self.key),  # the tuned model writes in this key; `sample --key` transposes from here
            "tuned": {
                "algo": self.config.algo,
                "step": step,
                "reward": self.reward_spec,
                "weights": self.config.weights,
                **self.piece.settings(),
                "primer": self.config.primer,
                "constraint": self.config.constraint,
                "from_prior": str(self.prior_dir),
            },
            "metrics": {k: v for k, v in stats.items() if isinstance(v, int | float)},
        }

    def export(self, directory: Path, step: int, stats: dict[str, Any]) -> None:
        """Write the current policy as a Note RNN checkpoint that `sample` and `evaluate` accept."""
        save_checkpoint(self.current_model(), directory, extra=self.checkpoint_extra(step, stats))


def load_run(directory: str | Path) -> TuneRun:
    """Rebuild a run from its directory and restore its newest valid checkpoint."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise TuneError(f"{directory} is not a tuning run ({CONFIG_FILE} not found)")
    data = json.loads(config_path.read_text())
    known = {f.name for f in fields(TuneConfig)}
    config = TuneConfig(**{k: v for k, v in data.items() if k in known})
    if "novelty_target" not in data:  # a run started before the default novelty targets resumes without them
        config.novelty_target = []
    if "form_target" not in data:  # ... and before the form's defaults: no form targets, the notetune rules
        config.form_target = []
        if config.form and not config.reward:
            config.reward = ["notetune"]
    if "position_bias" not in data:  # ... and one started before the position bias, without it
        config.position_bias = False
    if "phrase_copy" not in data:  # ... and one started before its phrase copies, without them
        config.phrase_copy = False
    if "phrase_gate" not in data:  # ... and one started before the copy gate per phrase, without it
        config.phrase_gate = False
    config.out = str(directory)
    run = TuneRun(config, resume=True)
    state = load_latest_checkpoint(directory / "checkpoints", run.algorithm.policy, run.algorithm.policy.optimizer)
    if state is None:
        logger.warning("no usable checkpoint in %s; starting from the prior", directory)
        return run
    run.restore(state)
    logger.info("resuming %s from step %d", directory, run.algorithm.num_timesteps)
    return run


def corpus_rates(corpus, length: int) -> dict[str, float]:
    """Hold and rest shares of the corpus's openings of ``length`` steps (the alarms' reference): compositions
    start where melodies start, and openings rest less than whole tunes do (0.6% against 1.0% at 32 steps)."""
    windows = corpus.windows(length, from_start_only=True)
    return {"hold_share": float((windows == HOLD).mean()), "rest_share": float((windows == REST).mean())}
