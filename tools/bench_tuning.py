"""Throughput of sampling and of tuning (``python tools/bench_tuning.py --out bench-results/tuning.json``).

- sampling: tokens/s of batched sampling from the shipped prior (target ≥ 100k tokens/s on 2 cores);
- tuning: environment steps/s of PPO end to end (rollouts + prior log-probabilities + rewards + updates)
  on the real environment with the `notetune` reward set, and on a do-nothing environment of the same
  shape in the same run (target ≥ 20k steps/s, and ≥ 60% of the do-nothing figure).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from notetune.agents.ppo import MelodyPPO
from notetune.envs import MelodyVecEnv, NullMelodyVecEnv
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.sampling import sample_tokens
from notetune.rewards import RewardSet
from stable_baselines3.common.logger import configure


def bench_sampling(model, num: int = 100_000, length: int = 32) -> dict:
    sample_tokens(model, 4096, length, seed=0)  # warm-up
    started = time.perf_counter()
    sample_tokens(model, num, length, seed=1)
    seconds = time.perf_counter() - started
    return {
        "melodies": num,
        "length": length,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(num * length / seconds),
    }


def bench_ppo(model, env, steps: int) -> float:
    algo = MelodyPPO(env, model, seed=0)
    algo.set_logger(configure(None, []))
    algo.learn(env.num_envs * env.length)  # warm-up rollout and update
    started = time.perf_counter()
    algo.learn(steps, reset_num_timesteps=False)
    return (algo.num_timesteps - env.num_envs * env.length) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench-results/tuning.json")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8192 * 40)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, _ = load_checkpoint(None)
    results = {"sampling": bench_sampling(model)}
    print(f"sampling: {results['sampling']['tokens_per_second']:,} tokens/s (target ≥ 100,000)")
    real = MelodyVecEnv(model, RewardSet.from_spec("notetune"), args.num_envs, 32)
    null = NullMelodyVecEnv(model.num_actions, args.num_envs, 32)
    real_speed = bench_ppo(model, real, args.steps)
    null_speed = bench_ppo(model, null, args.steps)
    results["ppo"] = {
        "num_envs": args.num_envs,
        "steps": args.steps,
        "steps_per_second": round(real_speed),
        "do_nothing_env_steps_per_second": round(null_speed),
        "ratio_to_do_nothing": round(real_speed / null_speed, 3),
    }
    print(
        f"ppo: {real_speed:,.0f} env steps/s with the notetune rewards and the prior (target ≥ 20,000); "
        f"{null_speed:,.0f} on a do-nothing env; ratio {real_speed / null_speed:.2f} (target ≥ 0.6)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
