"""Sampling speed against the raw model: tokens/s of bare ``model.step`` loops vs ``sample_tokens``.

    .venv/bin/python tools/bench_prior.py                       # the shipped LSTM and a Lookback LSTM
    .venv/bin/python tools/bench_prior.py default pretrained/lookback --lengths 32 128 --batch 4096

The raw loop feeds pre-drawn tokens to ``model.start`` / ``model.step`` (the model's compute and nothing
else); ``sample_tokens`` adds temperature, the softmax, drawing and copying out. Their ratio is what
sampling costs on top of the model (the target is at least 0.9 for every architecture and length). Each
figure is the best of ``--repeats`` interleaved runs, as the machine is shared.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "models", nargs="*", default=["default", "lookback"], help="checkpoints; 'lookback' = an untrained one"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
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
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
