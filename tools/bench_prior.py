"""Sampling speed against the raw model: tokens/s of bare ``model.step`` loops vs ``sample_tokens``.

    .venv/bin/python tools/bench_prior.py                       # the shipped LSTM and a Lookback LSTM
    .venv/bin/python tools/bench_prior.py default pretrained/lookback --lengths 32 128 --batch 4096

The raw loop feeds pre-drawn tokens to ``model.start`` / ``model.step`` (the model's compute and nothing
else); ``sample_tokens`` adds temperature, the softmax, drawing and copying out. Their ratio is what
sampling costs on top of the model (the target is at least 0.9 for every architecture and length). Each
figure is the best of ``--repeats`` interleaved runs, as the machine is shared. With ``--ppo-steps N``
it also times PPO tuning end to end (environment steps/s with the ``notetune`` rewards) for each prior.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.lookback import LookbackConfig, LookbackLSTM
from notetune.pretrained.sampling import sample_tokens


@torch.no_grad()
def raw_step_seconds(model, batch: int, length: int) -> float:
    tokens = torch.randint(0, model.num_actions, (length, batch), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    _, state = model.start(batch)
    for t in range(length - 1):
        _, state = model.step(tokens[t], state)
    return time.perf_counter() - started


def sampling_seconds(model, batch: int, length: int) -> float:
    started = time.perf_counter()
    sample_tokens(model, batch, length, seed=1, batch_size=batch)
    return time.perf_counter() - started


def ppo_steps_per_second(model, length: int, steps: int, num_envs: int = 256) -> float:
    from notetune.agents.ppo import MelodyPPO
    from notetune.envs import MelodyVecEnv
    from notetune.rewards import RewardSet
    from stable_baselines3.common.logger import configure

    env = MelodyVecEnv(model, RewardSet.from_spec("notetune", length=length), num_envs, length)
    algo = MelodyPPO(env, model, seed=0)
    algo.set_logger(configure(None, []))
    algo.learn(num_envs * length)  # warm-up rollout and update
    started = time.perf_counter()
    algo.learn(steps, reset_num_timesteps=False)
    return (algo.num_timesteps - num_envs * length) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "models", nargs="*", default=["default", "lookback"], help="checkpoints; 'lookback' = an untrained one"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ppo-steps", type=int, default=0, help="also time PPO tuning for this many env steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        if name == "lookback":
            torch.manual_seed(0)
            model = LookbackLSTM(LookbackConfig()).eval()
        else:
            model, _ = load_checkpoint(name)
        for length in args.lengths:
            raw_step_seconds(model, 256, length)  # warm-up
            raw, sampled = float("inf"), float("inf")
            for _ in range(args.repeats):  # interleaved, so a busy spell on the machine hits both alike
                raw = min(raw, raw_step_seconds(model, args.batch, length))
                sampled = min(sampled, sampling_seconds(model, args.batch, length))
            tokens = args.batch * length
            row = {
                "model": name,
                "arch": model.arch,
                "length": length,
                "batch": args.batch,
                "raw_step_tokens_per_s": round(tokens / raw),
                "sample_tokens_per_s": round(tokens / sampled),
                "ratio": round(raw / sampled, 3),
            }
            if args.ppo_steps:
                row["ppo_env_steps_per_s"] = round(ppo_steps_per_second(model, length, args.ppo_steps))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
