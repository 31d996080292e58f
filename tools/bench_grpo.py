"""Throughput of ppo, grpo and rloo on the same settings (``python tools/bench_grpo.py``).

Each algorithm tunes the shipped prior on the real batched environment with the `notetune` reward set
(rollouts + prior log-probabilities + rewards + updates, end to end) after one warm-up rollout, timed in
alternating rounds (ppo, grpo, rloo, ppo, ...) so that other load on the machine slows all three alike; the
figure is environment steps per second. Target: grpo and rloo at least 70% of ppo's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from notetune.agents.grpo import MelodyGRPO
from notetune.agents.ppo import MelodyPPO
from notetune.envs import MelodyVecEnv
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.rewards import RewardSet
from stable_baselines3.common.logger import configure


def interleaved_steps_per_second(algorithms: dict, steps: int, rounds: int) -> dict[str, float]:
    """Env steps/s of each algorithm, timed in alternating rounds so that a busy machine slows all alike."""
    seconds = dict.fromkeys(algorithms, 0.0)
    counted = dict.fromkeys(algorithms, 0)
    for algo in algorithms.values():
        algo.set_logger(configure(None, []))
        algo.learn(algo.env.num_envs * algo.env.length)  # warm-up rollout and update
    for _ in range(rounds):
        for name, algo in algorithms.items():
            before, started = algo.num_timesteps, time.perf_counter()
            algo.learn(steps // rounds, reset_num_timesteps=False)
            seconds[name] += time.perf_counter() - started
            counted[name] += algo.num_timesteps - before
    return {name: counted[name] / seconds[name] for name in algorithms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8192 * 20)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--kl-estimator", choices=("penalty", "k3"), default="penalty")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(None)

    def env() -> MelodyVecEnv:
        return MelodyVecEnv(model, RewardSet.from_spec("notetune"), args.num_envs, 32)

    algorithms = {
        "ppo": MelodyPPO(env(), model, seed=0),
        "grpo": MelodyGRPO(env(), model, args.group_size, "grpo", args.kl_estimator, seed=0),
        "rloo": MelodyGRPO(env(), model, args.group_size, "rloo", args.kl_estimator, seed=0),
    }
    speeds = interleaved_steps_per_second(algorithms, args.steps, args.rounds)
    results = {name: round(speed) for name, speed in speeds.items()}
    for name, speed in results.items():
        print(f"{name}: {speed:,} env steps/s ({speed / results['ppo']:.2f} of ppo)")
    verdict = all(results[name] >= 0.7 * results["ppo"] for name in ("grpo", "rloo"))
    print(f"grpo and rloo >= 70% of ppo: {'yes' if verdict else 'no'}")
    if args.out:
        record = {"settings": vars(args), "steps_per_second": results}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
