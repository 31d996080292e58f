"""The learned-rewards targets end to end (~15 min on 2 cores): a simulated listener answers 1,000 pairs of
untuned samples, `reward fit` learns them (and is scored on 10,000 fresh pairs of the same listener),
`tune --reward learned:DIR --judge JUDGE` and `tune --algo dpo` tune the prior, and the judge compares each with the
untuned prior on 10,000 blind pairs. The tune run's evaluations carry the learned reward and the judge's share,
so its run.json holds the overoptimisation curve (also drawn by `notetune compare RUN`).

    python tools/bench_learned.py --out bench-results/learned [--tune-args "..."] [--dpo-args "..."]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from notetune.agents.listener_loop import SimulateConfig, simulate_listening
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.reward_model import load_reward_model
from notetune.pretrained.reward_training import preference_metrics
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.rewards.listener import judge_preference_share, load_judge

NOTETUNE = [sys.executable, "-m", "notetune.scripts.cli"]


def notetune(*args: str) -> None:
    command = [*NOTETUNE, *args]
    print("$ notetune " + shlex.join(args), flush=True)
    subprocess.run(["nice", "-n", "10", *command], check=True)


def fresh_accuracy(reward_model, judge, noise: float, pairs: int = 10_000) -> dict[str, float]:
    """The reward model on pairs of new untuned samples answered by the same listener (another seed): a far
    tighter held-out figure than the fit's 200 held-out pairs, beside the listener's own ceiling."""
    answered, ceiling = simulate_listening(SimulateConfig(pairs=pairs, noise=noise, seed=99), judge)
    a, b = np.stack([pair.a for pair in answered]), np.stack([pair.b for pair in answered])
    target = np.array([pair.target for pair in answered])
    return {**preference_metrics(reward_model.preference_probability(a, b), target), "ceiling": ceiling}


CURVE = ("reward_learned", "judge_share", "kl_per_composition", "log_prior_per_token", "distinct_melodies")


def figures(model, prior, reward_model, judge, baseline, size: int) -> dict[str, float]:
    tokens = sample_tokens(model, size, 32, seed=1234)
    mean, spread = reward_model.score(tokens)
    return {
        "judge_share": judge_preference_share(judge, tokens, baseline[:size]),
        "learned_mean": float(mean.mean()),
        "learned_spread": float(spread.mean()),
        "log_prior_per_token": float(token_log_probs(prior, tokens).mean()),
        "distinct_melodies": len({row.tobytes() for row in tokens}) / len(tokens),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/learned")
    parser.add_argument("--judge", default="notetune.rewards.listener:contour_arch")
    parser.add_argument("--noise", default="0.1")
    parser.add_argument("--weight", default="20", help="weight of the learned reward in the tune run")
    parser.add_argument("--tune-args", default="", help="extra `notetune tune` flags")
    parser.add_argument("--dpo-args", default="", help="extra `notetune tune --algo dpo` flags, e.g. --dpo-loss ipo")
    parser.add_argument("--size", type=int, default=10_000, help="blind pairs per judgement")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    prefs, rm, tune, dpo = out / "prefs.jsonl", out / "rm", out / "tune", out / "dpo"
    if not prefs.exists():
        notetune("reward", "simulate", "--judge", args.judge, "--pairs", "1000", "--noise", args.noise,
                 "--seed", "10", "--out", str(prefs))  # fmt: skip
    if not (rm / "config.json").exists():  # each stage is skipped when its output exists: rerun to resume
        notetune("reward", "fit", "--preferences", str(prefs), "--out", str(rm))
    if not (tune / "run.json").exists():
        notetune("tune", "--reward", f"learned:{rm}={args.weight}", "--judge", args.judge, "--threads", "1",
                 "--out", str(tune), *shlex.split(args.tune_args))  # fmt: skip
    if not (dpo / "run.json").exists():
        notetune("tune", "--algo", "dpo", "--preferences", str(prefs), "--out", str(dpo), *shlex.split(args.dpo_args))

    judge = load_judge(args.judge)
    prior, _ = load_checkpoint(None)
    reward_model, rm_config = load_reward_model(rm)
    baseline = sample_tokens(prior, args.size, 32, seed=1235)
    tune_record = json.loads((tune / "run.json").read_text())
    results = {
        "reward_fit": rm_config["metrics"],
        "reward_fit_fresh_pairs": fresh_accuracy(reward_model, judge, float(args.noise)),
        "untuned": figures(prior, prior, reward_model, judge, baseline, args.size),
        "tune": figures(load_checkpoint(tune / "model")[0], prior, reward_model, judge, baseline, args.size),
        "dpo": figures(load_checkpoint(dpo / "model")[0], prior, reward_model, judge, baseline, args.size),
        "tune_chosen_step": tune_record["chosen"]["step"],
        "curve": [
            {"step": e["step"], **{name: e["stats"].get(name) for name in CURVE}} for e in tune_record["evaluations"]
        ],
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "reward_fit"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
