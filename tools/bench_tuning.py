"""Throughput of sampling and of tuning (``python tools/bench_tuning.py --out bench-results/tuning.json``).

- sampling: tokens/s of batched sampling from the shipped prior (target ≥ 100k tokens/s on 2 cores), at 32 and
  128 steps, each as a ratio to the raw model's step rate measured in the same run (the model stepped on a
  batch with no sampling; target ≥ 0.9);
- tuning: environment steps/s of PPO end to end (rollouts + prior log-probabilities + rewards + updates)
  on the real environment with the `notetune` reward set, and on a do-nothing environment of the same
  shape in the same run (target ≥ 20k steps/s, and ≥ 60% of the do-nothing figure);
- long pieces: PPO env steps/s at 128 steps with the default long set (`notetune_long`) and with
  `notetune,form` under a strict AABA form, and at tune's 128-step defaults without a form and under a soft
  AABA form (position bias with phrase copies), each as a ratio to the 32-step figure (target ≥ 0.7).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from notetune.agents.config import TuneConfig, with_length_defaults
from notetune.agents.ppo import MelodyPPO
from notetune.envs import MelodyVecEnv, NullMelodyVecEnv
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.form import Form
from notetune.pretrained.sampling import sample_tokens, warm_start
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


@torch.no_grad()
def bench_raw_steps(model, batch: int = 4096, length: int = 32, repeats: int = 3) -> float:
    """Tokens/s of the model alone: ``length`` steps of a ``batch`` of fixed tokens, no sampling (best of
    ``repeats``), the ceiling of what sampling can reach."""
    best = 0.0
    tokens = torch.full((batch,), 2, dtype=torch.long)
    for _ in range(repeats):
        started = time.perf_counter()
        _, state = warm_start(model, batch)
        for _ in range(length - 1):
            _, state = model.step(tokens, state)
        best = max(best, batch * length / (time.perf_counter() - started))
    return best


def bench_sampling_ratio(model, length: int, num: int) -> dict:
    """Sampling tokens/s at ``length`` and its ratio to the raw step rate measured just before."""
    raw = bench_raw_steps(model, length=length)
    sampled = bench_sampling(model, num=num, length=length)
    return {
        **sampled,
        "raw_model_tokens_per_second": round(raw),
        "ratio_to_raw": round(sampled["tokens_per_second"] / raw, 3),
    }


def bench_ppo(model, env, steps: int, **settings) -> float:
    algo = MelodyPPO(env, model, seed=0, **settings)
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
    parser.add_argument("--sampling-tokens", type=int, default=3_200_000, help="tokens per sampling measurement")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
    results["sampling_by_length"] = {}
    for length in (32, 128):
        figures = bench_sampling_ratio(model, length, num=args.sampling_tokens // length)
        results["sampling_by_length"][str(length)] = figures
        print(
            f"sampling at {length} steps: {figures['tokens_per_second']:,} tokens/s, raw model "
            f"{figures['raw_model_tokens_per_second']:,}; ratio {figures['ratio_to_raw']:.2f} (target ≥ 0.9)"
        )
    long_envs = {
        "notetune_long": MelodyVecEnv(model, RewardSet.from_spec("notetune_long", length=128), args.num_envs, 128),
        "notetune,form (strict AABA)": MelodyVecEnv(
            model,
            RewardSet.from_spec("notetune,form", length=128, form="AABA"),
            args.num_envs,
            128,
            form=Form.parse("AABA").layout(128),
        ),
    }
    # `tune`'s defaults at 128 steps: a minibatch of 2,048 steps (16 compositions) and the position bias.
    defaults = with_length_defaults(TuneConfig(), 128)
    long_defaults = {"batch_size": defaults.batch_size, "policy_kwargs": {"position_bias": defaults.position_bias}}
    long_envs["notetune_long, tune's 128-step defaults"] = MelodyVecEnv(
        model, RewardSet.from_spec("notetune_long", length=128), args.num_envs, 128
    )
    # ... and under a soft AABA form, whose position bias also copies from the earlier phrases.
    soft = "notetune,form (soft AABA), tune's 128-step defaults with phrase copies"
    long_envs[soft] = MelodyVecEnv(
        model, RewardSet.from_spec("notetune,form", length=128, form="AABA"), args.num_envs, 128
    )
    phrase_lags = Form.parse("AABA").layout(128).phrase_lags
    settings = {
        "notetune_long, tune's 128-step defaults": long_defaults,
        soft: {**long_defaults, "policy_kwargs": {**long_defaults["policy_kwargs"], "phrase_lags": phrase_lags}},
    }
    results["ppo_by_length"] = {"32 (notetune)": {"steps_per_second": round(real_speed), "ratio_to_32": 1.0}}
    for name, env in long_envs.items():
        speed = bench_ppo(model, env, args.steps, **settings.get(name, {}))
        results["ppo_by_length"][f"128 ({name})"] = {
            "steps_per_second": round(speed),
            "ratio_to_32": round(speed / real_speed, 3),
        }
        print(
            f"ppo at 128 steps, {name}: {speed:,.0f} env steps/s; "
            f"ratio to 32 steps {speed / real_speed:.2f} (target ≥ 0.7)"
        )
    results["load_average"] = list(os.getloadavg())
    print(f"load average while measuring (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in results['load_average'])}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
