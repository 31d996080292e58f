"""Benchmark the reward code: the ``rl_tuner`` set per step, and Table 1 statistics.

    python tools/bench_rewards.py --out bench-results/rewards.json

Targets (issue 4): the whole ``rl_tuner`` set over 1,024 melodies at >= 1 M melody-steps/s, and Table 1
statistics of 100k compositions in <= 10 s, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, HOLD, REST
from notetune.rewards import RewardSet, table1_statistics

STEP_TARGET = 1_000_000
"""melody-steps per second"""
STATISTICS_TARGET = 10.0
"""seconds for 100k compositions"""


def corpus_like(count: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Random melodies with a realistic mix: half holds, a few rests, pitches around C4 in C major."""
    scale = DEFAULT_VOCABULARY.pitch_to_token(np.array([60, 62, 64, 65, 67, 69, 71, 72, 57, 55, 53]))
    tokens = scale[rng.integers(0, scale.size, (count, length))]
    roll = rng.random((count, length))
    tokens[roll < 0.5] = HOLD
    tokens[roll < 0.08] = REST
    return tokens


def bench_reward_set(spec: str, batch_size: int, length: int, repeats: int, rng: np.random.Generator) -> dict:
    rewards = RewardSet.from_spec(spec, length=length)
    tokens = corpus_like(batch_size, length, rng)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        rewards.reset(batch_size)
        for t in range(length):
            rewards.total(rewards.step(tokens, t))
        best = min(best, time.perf_counter() - start)
    rate = batch_size * length / best
    return {
        "spec": spec,
        "batch_size": batch_size,
        "steps": length,
        "seconds_per_episode": best,
        "melody_steps_per_second": rate,
        "target": STEP_TARGET,
        "meets_target": rate >= STEP_TARGET,
    }


def bench_statistics(count: int, length: int, rng: np.random.Generator) -> dict:
    tokens = corpus_like(count, length, rng)
    start = time.perf_counter()
    table1_statistics(tokens)
    seconds = time.perf_counter() - start
    return {
        "compositions": count,
        "seconds": seconds,
        "target_seconds": STATISTICS_TARGET,
        "meets_target": seconds <= STATISTICS_TARGET,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--batch-size", type=int, default=1024, help="melodies stepped together")
    parser.add_argument("--compositions", type=int, default=100_000, help="compositions for Table 1 statistics")
    parser.add_argument("--repeats", type=int, default=5, help="episodes timed per reward set; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    results = {
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.machine(),
        },
        "reward_sets": [
            bench_reward_set(spec, args.batch_size, 32, args.repeats, rng) for spec in ("rl_tuner", "notetune")
        ],
        "table1_statistics": bench_statistics(args.compositions, 32, rng),
    }
    for row in results["reward_sets"]:
        print(
            f"{row['spec']:>9} set, {row['batch_size']} melodies x {row['steps']} steps: "
            f"{row['melody_steps_per_second'] / 1e6:.2f} M melody-steps/s "
            f"(target {STEP_TARGET / 1e6:.0f} M: {'met' if row['meets_target'] else 'MISSED'})"
        )
    stats = results["table1_statistics"]
    print(
        f"Table 1 statistics, {stats['compositions']:,} compositions: {stats['seconds']:.2f} s "
        f"(target {STATISTICS_TARGET:.0f} s: {'met' if stats['meets_target'] else 'MISSED'})"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
