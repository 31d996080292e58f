"""A tuning run end to end: build from a TuneConfig, train with watching and checkpoints, resume after a
crash, export the chosen checkpoint and write ``run.json``."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from notetune.envs.vec_env import MelodyVecEnv
from notetune.pretrained.checkpoint import (
    checkpoint_sha256,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from notetune.pretrained.constraints import ConstraintError, control_inputs
from notetune.pretrained.corpus import DEFAULT_CORPUS, load_corpus
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.sampling import sample_tokens
from notetune.pretrained.transpose import PRIOR_KEY, transpose_to_key
from notetune.rewards.keys import Key
from notetune.rewards.reward_set import RewardSet

from .callbacks import TuneCallback
from .config import ALGORITHMS, TuneConfig
from .kl import KLController
from .watch import SelectionRule, Watcher, music_reward_per_melody

logger = logging.getLogger(__name__)
CONFIG_FILE = "config.json"


class TuneError(ValueError):
    """A tuning run cannot start (bad config, missing files, mismatched checkpoint)."""


class TuneRun:
    """Everything one run owns. Construction validates all inputs before any training work."""

    def __init__(self, config: TuneConfig, resume: bool = False) -> None:
        self.config = config
        self.out = Path(config.out)
        if config.algo not in ALGORITHMS:
            raise TuneError(f"unknown algorithm {config.algo!r}; choose from {', '.join(ALGORITHMS)}")
        if config.steps <= 0 or config.num_envs <= 0 or config.length < 8:
            raise TuneError("steps and num_envs must be positive and length at least 8")
        if not resume and (self.out / CONFIG_FILE).exists():
            raise TuneError(
                f"{self.out} already holds a run; resume it with `notetune tune --resume {self.out}` "
                "or choose another --out"
            )
        torch.set_num_threads(config.threads)
        try:
            self.key = Key.parse(config.key)
        except ValueError as error:
            raise TuneError(str(error)) from error
        self.prior_dir = find_checkpoint(config.prior)
        self.prior, self.prior_config = load_checkpoint(self.prior_dir)
        # The prior writes in the key its checkpoint records (C major / A minor if none): shift it to the run's.
        self.prior = transpose_to_key(self.prior, Key.parse(self.prior_config.get("key") or PRIOR_KEY), self.key)
        try:
            self.primer, self.allowed = control_inputs(
                config.primer, config.constraint, config.length, self.prior.vocab
            )
        except ConstraintError as error:
            raise TuneError(str(error)) from error
        if (self.primer is not None or self.allowed is not None) and config.algo not in ("ppo", "a2c", "grpo", "rloo"):
            raise TuneError(
                f"--primer and --constraint need --algo ppo, a2c, grpo or rloo (their policy reads the primer and "
                f"masks its actions); {config.algo} explores with unmasked random actions"
            )
        self.corpus_path = DEFAULT_CORPUS if config.corpus == "default" else Path(config.corpus)
        self.corpus = load_corpus(self.corpus_path) if config.corpus != "none" else None
        if self.corpus is not None and self.corpus.vocab != self.prior.vocab:
            raise TuneError(
                f"corpus {self.corpus_path} uses vocabulary {self.corpus.vocab} but the prior "
                f"{self.prior_dir} uses {self.prior.vocab}"
            )
        self.rewards = self.build_rewards()
        self.eval_rewards = self.build_rewards()
        self.check_rewards()
        # The selection bounds are TuneConfig fields of the same names.
        rule = SelectionRule(**{f.name: getattr(config, f.name) for f in fields(SelectionRule)})
        try:
            rule.check_names(list(self.rewards.weights))
        except ValueError as error:
            raise TuneError(str(error)) from None
        self.watcher = Watcher(rule, patience=config.patience, stop_on_collapse=config.stop_on_collapse)
        self.elapsed_before = 0.0
        self.alarms: list[dict[str, Any]] = []
        self.corpus_rates = corpus_rates(self.corpus) if self.corpus is not None else None
        self.algorithm = self.build_algorithm()
        self.resumed_from: str | None = None

    # -------------------------------------------------------------------------------- building
    def build_rewards(self) -> RewardSet:
        return RewardSet.from_spec(
            self.config.reward,
            self.config.weights,
            key=self.key,
            vocab=self.prior.vocab,
            length=self.config.length,
            corpus=self.corpus.melodies() if self.corpus is not None else None,
        )

    def check_rewards(self) -> None:
        """Score a few of the prior's compositions with a throw-away reward set, so a plugin that raises or
        returns NaN fails here, before the run directory exists."""
        tokens = sample_tokens(
            self.prior, 8, self.config.length, seed=self.config.seed, primer=self.primer, allowed=self.allowed
        )
        music_reward_per_melody(self.build_rewards(), tokens)

    def build_algorithm(self):
        config = self.config
        if config.algo in ("ppo", "a2c", "grpo", "rloo"):
            from .ppo import MelodyA2C, MelodyPPO

            env = MelodyVecEnv(
                self.prior,
                self.rewards,
                config.num_envs,
                config.length,
                log_prior_weight=1.0 if config.kl_mode == "rl_tuner" else 0.0,
                primer=self.primer,
                allowed=self.allowed,
            )
            kl = KLController(config.kl_coef, config.kl_target or None, config.kl_horizon)
            common = dict(
                learning_rate=config.learning_rate,
                gamma=config.gamma,
                gae_lambda=config.gae_lambda,
                ent_coef=config.ent_coef,
                vf_coef=config.vf_coef,
                max_grad_norm=config.max_grad_norm,
                kl_mode="none" if config.kl_mode == "rl_tuner" else "full",
                kl_controller=kl,
                seed=config.seed,
            )
            if config.algo in ("grpo", "rloo"):
                from .grpo import MelodyGRPO

                try:
                    return MelodyGRPO(
                        env,
                        self.prior,
                        group_size=config.group_size,
                        advantage=config.algo,
                        kl_estimator=config.kl_estimator,
                        n_epochs=config.n_epochs,
                        batch_size=config.batch_size,
                        clip_range=config.clip_range,
                        **common,
                    )
                except ValueError as error:
                    raise TuneError(str(error)) from None
            if config.algo == "ppo":
                return MelodyPPO(
                    env,
                    self.prior,
                    n_epochs=config.n_epochs,
                    batch_size=config.batch_size,
                    clip_range=config.clip_range,
                    **common,
                )
            return MelodyA2C(env, self.prior, **common)
        from .dqn import build_q_learner

        return build_q_learner(config, self.prior, self.rewards)

    # ------------------------------------------------------------------------------------ model
    def current_model(self) -> NoteRNN:
        """The policy as a stand-alone sampling model (what would be exported now)."""
        return self.algorithm.policy.export_actor()

    # ------------------------------------------------------------------------------------ train
    def run(self) -> dict[str, Any]:
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
        tmp.replace(self.out / CONFIG_FILE)
        from stable_baselines3.common.logger import configure

        self.algorithm.set_logger(configure(str(self.out / "tensorboard"), ["tensorboard"]))
        remaining = config.steps - self.algorithm.num_timesteps
        callback = TuneCallback(self)
        started = time.monotonic()
        if remaining > 0:
            self.algorithm.learn(
                total_timesteps=remaining,
                callback=callback,
                reset_num_timesteps=self.algorithm.num_timesteps == 0,
                log_interval=1,
            )
        callback.finish()
        return self.finish(callback, time.monotonic() - started)

    def finish(self, callback: TuneCallback, seconds: float) -> dict[str, Any]:
        best = self.watcher.best
        if best is None and self.watcher.history:
            # Nothing met every bound: export the final policy, described by its (final) evaluation.
            last = self.watcher.history[-1]
            best = {"step": last["step"], "stats": last["stats"], "fallback": True, "violations": last["violations"]}
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
        rule, targets = self.watcher.rule, self.watcher.rule.describe_targets()
        if best and not best.get("fallback") and best.get("missed"):
            why = (
                f"no evaluation within bounds met every target ({targets}); this one missed the "
                f"fewest ({'; '.join(best['missed'])}), then had the most music reward "
                f"({best['stats']['music_reward']:.2f} per composition), among evaluations with "
                + rule.describe_bounds()
            )
        elif best and not best.get("fallback"):
            why = (
                f"most music reward ({best['stats']['music_reward']:.2f} per composition) among evaluations with "
                + rule.describe_bounds()
                + (f" that meet every target ({targets})" if targets else "")
            )
        else:
            why = "no evaluation met every bound; exported the final policy" + (
                " (its evaluation: " + "; ".join(best["violations"]) + ")" if best else ""
            )
        total_seconds = self.elapsed_before + seconds
        record = {
            "config": asdict(self.config),
            "git_commit": _git_commit(),
            "versions": _versions(),
            "seed": self.config.seed,
            "prior": {"path": str(self.prior_dir), "sha256": checkpoint_sha256(self.prior_dir)},
            "corpus": {"path": str(self.corpus_path), "sha256": self.corpus.sha256 if self.corpus else None},
            "steps": self.algorithm.num_timesteps,
            "seconds": round(total_seconds, 1),
            "steps_per_second": round(callback.steps_this_session / max(seconds, 1e-9), 1),
            "stop_reason": callback.stop_reason or "completed the configured steps",
            "resumed_from": self.resumed_from,
            "chosen": {"step": best["step"] if best else None, "why": why, "path": str(export_dir)},
            "untuned": self.watcher.baseline,
            "final_metrics": best["stats"] if best else None,
            "alarms": callback.alarms,
            "evaluations": self.watcher.history,
        }
        tmp = self.out / "run.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
        tmp.replace(self.out / "run.json")
        return record

    def checkpoint_extra(self, step: int, stats: dict[str, Any]) -> dict[str, Any]:
        """What a tuned checkpoint's config.json says besides the architecture."""
        return {
            "key": str(self.key),  # the tuned model writes in this key; `sample --key` transposes from here
            "tuned": {
                "algo": self.config.algo,
                "step": step,
                "reward": self.config.reward,
                "weights": self.config.weights,
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
    from .checkpoints import load_latest_checkpoint

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise TuneError(f"{directory} is not a tuning run ({CONFIG_FILE} not found)")
    data = json.loads(config_path.read_text())
    config = TuneConfig(**data)
    config.out = str(directory)
    run = TuneRun(config, resume=True)
    state = load_latest_checkpoint(directory / "checkpoints", run.algorithm.policy, run.algorithm.policy.optimizer)
    if state is None:
        logger.warning("no usable checkpoint in %s; starting from the prior", directory)
        return run
    run.algorithm.set_state(state["algorithm"])
    if state["buffers"] and hasattr(run.algorithm, "set_buffers"):
        run.algorithm.set_buffers(state["buffers"])
    run.watcher.load_state_dict(state["watcher"])
    run.elapsed_before = float(state.get("elapsed_seconds", 0.0))
    run.alarms = list(state.get("alarms") or [])
    if "generator" in state:
        run.algorithm.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
    run.resumed_from = state["path"]
    logger.info("resuming %s from step %d", directory, run.algorithm.num_timesteps)
    return run


def corpus_rates(corpus) -> dict[str, float]:
    """Hold and rest shares of the corpus's opening two bars (the alarms' reference): compositions start
    where melodies start, and openings rest less than whole tunes do (0.6% against 1.0%)."""
    windows = corpus.windows(32, from_start_only=True)
    return {"hold_share": float((windows == 1).mean()), "rest_share": float((windows == 0).mean())}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("notetune", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "music21"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
