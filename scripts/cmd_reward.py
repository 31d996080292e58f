"""``notetune reward``: rewards learned from listeners — ``fit`` a reward model to preference pairs, ``score``
melodies with it, ``simulate`` a listener, tune from pairs directly with ``dpo``, and ``judge`` a model."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from . import config
from .cli import UserError


@dataclass
class ScoreConfig:
    """Settings of `notetune reward score`."""

    model: str = ""
    """Reward-model directory (from `notetune reward fit`)."""
    samples: str = ""
    """samples.npz (array 'tokens', melodies × steps) or a folder holding one."""
    json: str = ""
    """JSON file to write: {"mean": [...], "spread": [...]} per melody, in input order."""
    key: str = "C major"
    """Key the melodies are written in (they are read in C major)."""


@dataclass
class JudgeConfig:
    """Settings of `notetune reward judge`: how often a judge prefers a model over a baseline, blind."""

    judge: str = "notetune.rewards.listener:contour_arch"
    """The judge, module:function (tokens (N, T) → scores (N,))."""
    model: str = ""
    """Model or run directory to judge."""
    baseline: str = "default"
    """Model it is paired against ('default' = the untuned prior)."""
    size: int = 10_000
    """Blind pairs."""
    length: int = 32
    """Steps per composition."""
    seed: int = 1234
    """Sampling seed of the model (the baseline uses seed + 1)."""


def register(parser: argparse.ArgumentParser):
    from notetune.agents.dpo import DPOConfig
    from notetune.agents.reward_fit import RewardFitConfig

    actions = parser.add_subparsers(dest="reward_action", required=True, metavar="ACTION")
    fit = actions.add_parser("fit", help="fit a Bradley–Terry reward-model ensemble to preference pairs")
    fit.add_argument("--config", help="TOML file with RewardFitConfig fields")
    config.add_arguments(fit, RewardFitConfig)
    score = actions.add_parser("score", help="score melodies with a reward model (ensemble mean and spread)")
    score.add_argument("--config", help="TOML file with ScoreConfig fields")
    config.add_arguments(score, ScoreConfig)
    add_simulate_arguments(actions.add_parser("simulate", help=SIMULATE_HELP))
    dpo = actions.add_parser("dpo", help="tune the prior directly from preference pairs (DPO or IPO)")
    dpo.add_argument("--config", help="TOML file with DPOConfig fields")
    config.add_arguments(dpo, DPOConfig)
    judge = actions.add_parser("judge", help="share of blind pairs a judge prefers a model over a baseline")
    judge.add_argument("--config", help="TOML file with JudgeConfig fields")
    config.add_arguments(judge, JudgeConfig)
    return run


SIMULATE_HELP = "write preferences.jsonl answered by a simulated listener"


def add_simulate_arguments(simulate: argparse.ArgumentParser) -> None:
    """The flags of `reward simulate` (also `listen simulate`, its alias)."""
    from notetune.agents.listener_loop import SimulateConfig

    simulate.add_argument("--config", help="TOML file with SimulateConfig fields")
    simulate.add_argument("--models", nargs="+", metavar="MODEL", help="A B: pair melody i of A with melody i of B")
    simulate.add_argument("--seeds", action="store_true", help="pairs from two seeds of one model (the default)")
    config.add_arguments(simulate, SimulateConfig, skip=("models",))


def run(args: argparse.Namespace) -> int:
    return run_action(args.reward_action, args)


def run_action(name: str, args: argparse.Namespace) -> int:
    """Run one action (fit, score, simulate, dpo, judge), its input errors as one line."""
    from notetune.rewards.listener import JudgeError
    from notetune.rewards.preferences import PreferenceError

    action = {"fit": run_fit, "score": run_score, "simulate": run_simulate, "dpo": run_dpo, "judge": run_judge}
    try:
        return action[name](args)
    except (PreferenceError, JudgeError, FileExistsError) as error:
        raise UserError(str(error)) from error


def run_fit(args: argparse.Namespace) -> int:
    from notetune.agents.reward_fit import RewardFitConfig, fit_reward_model

    cfg = config.from_args(RewardFitConfig, args, args.config)
    result = fit_reward_model(cfg)
    print(result["data"]["summary"])
    split = result["split"]
    print(f"held out by {split['by']}: {split['train_pairs']} training pairs, {split['held_out_pairs']} held out")
    for name, entry in result["candidates"].items():
        parts = [f"{part} " + _figures(entry[part]) for part in ("validation", "held_out") if part in entry]
        print(f"  {name:10s} " + "; ".join(parts) + ("   <- kept" if name == result["architecture"] else ""))
    if result["listener_ceiling"]:
        ceiling = result["listener_ceiling"]
        print(
            f"the simulated listener's ceiling on the held-out pairs: {ceiling['expected_accuracy']:.1%} expected, "
            f"its own ranking agrees with {ceiling['judge_accuracy']:.1%} of the answers"
        )
    print(f"wrote {cfg.out}/model.safetensors and {cfg.out}/config.json; use it as --reward learned:{cfg.out}")
    return 0


def _figures(metrics: dict) -> str:
    return f"accuracy {metrics['pairwise_accuracy']:.1%}, log-loss {metrics['log_loss']:.3f}, ECE {metrics['ece']:.3f}"


def run_score(args: argparse.Namespace) -> int:
    from notetune.pretrained.export import load_samples
    from notetune.pretrained.reward_model import load_reward_model
    from notetune.rewards.keys import Key

    cfg = config.from_args(ScoreConfig, args, args.config)
    for name in ("model", "samples", "json"):
        if not getattr(cfg, name):
            raise config.ConfigError(f"give --{name}")
    model, _ = load_reward_model(cfg.model)
    try:
        tokens = load_samples(cfg.samples, model.vocab)
        key = Key.parse(cfg.key)
    except ValueError as error:
        raise UserError(str(error)) from error
    mean, spread = model.score(tokens, key=key)
    Path(cfg.json).write_text(json.dumps({"mean": mean.tolist(), "spread": spread.tolist()}) + "\n")
    print(f"scored {len(mean)} melodies: mean {mean.mean():+.3f}, spread {spread.mean():.3f}; wrote {cfg.json}")
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from notetune.agents.listener_loop import SimulateConfig, simulate_listening, write_preferences
    from notetune.rewards.listener import load_judge

    base = {"models": args.models} if args.models else {}
    cfg = config.from_args(SimulateConfig, args, args.config, base=base)
    if args.seeds and len(cfg.models) > 1:
        raise config.ConfigError("--seeds pairs two seeds of one model; give at most one model with it")
    judge = load_judge(cfg.judge)
    pairs, ceiling = simulate_listening(cfg, judge)
    write_preferences(pairs, cfg.out, cfg.append)
    wins = sum(pair.winner == "a" for pair in pairs)
    print(
        f"wrote {len(pairs)} pairs to {cfg.out} (A preferred in {wins}); a perfect predictor of these answers "
        f"would be right {ceiling:.1%} of the time (noise {cfg.noise:g})"
    )
    return 0


def run_dpo(args: argparse.Namespace) -> int:
    from notetune.agents.dpo import DPOConfig, train_dpo

    cfg = config.from_args(DPOConfig, args, args.config)
    print_dpo_record(train_dpo(cfg))
    return 0


def print_dpo_record(record: dict) -> None:
    """A DPO run's data, per-epoch figures and the exported epoch (for `reward dpo` and `tune --algo dpo`)."""
    print(record["data"])
    for row in record["history"]:
        print(
            f"  epoch {row['epoch']:3d}: held-out loss {row['held_out_loss']:.4f}, accuracy "
            f"{row['held_out_accuracy']:.1%}, KL {row['kl_per_composition']:.2f} nats/composition, "
            f"log p_prior {row['log_prior_per_token']:.3f}/token, distinct {row['distinct_melodies']:.1%}"
            + (f", judge {row['judge_share']:.1%}" if "judge_share" in row else "")
        )
    chosen = record["chosen"]
    print(f"exported {chosen['path']} (epoch {chosen['epoch']}: {chosen['why']})")


def run_judge(args: argparse.Namespace) -> int:
    from notetune.agents.listener_loop import judge_share_against
    from notetune.rewards.listener import load_judge

    cfg = config.from_args(JudgeConfig, args, args.config)
    if not cfg.model:
        raise config.ConfigError("give --model (a model or run directory)")
    share = judge_share_against(load_judge(cfg.judge), cfg.model, cfg.baseline, cfg.size, cfg.length, cfg.seed)
    print(f"{cfg.judge} prefers {cfg.model} over {cfg.baseline} in {share:.1%} of {cfg.size:,} blind pairs")
    return 0
