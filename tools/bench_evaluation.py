"""Benchmark: sample and score 100k compositions of 32 steps (target: ≤ 30 s on 2 cores).

    python tools/bench_evaluation.py --out bench-results/evaluation.json

Times the whole `notetune evaluate` path for a model (sampling with log-probabilities, then every metric with
1,000 bootstrap resamples), then each scoring phase alone, and the extra prior pass a tuned model needs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from notetune.agents.sources import load_corpus_index
from notetune.pretrained.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from notetune.pretrained.encoding import canonicalize
from notetune.pretrained.model import NoteRNN, NoteRNNConfig
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.rewards import table1_statistics
from notetune.rewards.evaluation import COPY_NS, evaluate_tokens
from notetune.rewards.metrics import (
    bootstrap_intervals,
    diversity_by_set,
    pitch_statistics,
    rhythm_statistics,
)
from notetune.rewards.statistics import table1_counts

BUDGET_SECONDS = 30.0


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/evaluation.json", help="JSON file for the numbers")
    parser.add_argument("--num", type=int, default=100_000, help="compositions")
    parser.add_argument("--length", type=int, default=32, help="steps per composition")
    parser.add_argument("--model", default="default", help="checkpoint ('default': the shipped prior)")
    parser.add_argument("--corpus", default="default", help="corpus file for the novelty metrics")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default; 1 is far faster on a machine busy with other jobs)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.model == "default" and not (DEFAULT_CHECKPOINT / "config.json").is_file():
        torch.manual_seed(0)
        model, model_name = (
            NoteRNN(NoteRNNConfig()).eval(),
            "untrained NoteRNN (default size; no shipped prior yet)",
        )
    else:
        model, _ = load_checkpoint(None if args.model == "default" else args.model)
        model_name = str(DEFAULT_CHECKPOINT if args.model == "default" else args.model)
    config = model.config
    print(
        f"model: {model_name} (hidden {config.hidden_size}, embedding {config.embedding_dim}, "
        f"{config.num_layers} layer(s)); torch threads: {torch.get_num_threads()}; load: {os.getloadavg()}"
    )

    index, corpus_path = load_corpus_index(args.corpus)
    # Build the corpus n-gram index for every phrase length up front: a one-off cost per corpus file.
    started = time.perf_counter()
    if index is not None:
        for n in range(2, args.length + 1):
            index.keys(n)
    index_seconds = time.perf_counter() - started

    (tokens, log_probs), sampling = timed(
        sample_tokens, model, args.num, args.length, 1.0, 0, batch_size=4096, return_log_probs=True
    )
    # The model is its own prior here: the KL is 0 and no second network pass is needed.
    evaluation, scoring = timed(
        evaluate_tokens,
        tokens,
        "bench",
        prior_log_probs=log_probs,
        model_log_probs=log_probs,
        corpus_index=index,
        resamples=args.resamples,
    )
    phases = {
        "table1_statistics": timed(table1_statistics, tokens)[1],
        "table1_per_melody_counts": timed(table1_counts, tokens)[1],
        "novelty": timed(index.copy_statistics, tokens, COPY_NS)[1] if index is not None else None,
        "diversity": timed(diversity_by_set, canonicalize(tokens), 100)[1],
        "pitch_and_rhythm": timed(lambda t: (pitch_statistics(t), rhythm_statistics(t)), tokens)[1],
        "bootstrap_45_metrics": timed(
            bootstrap_intervals, np.ones((args.num, 45)), np.ones((args.num, 45)), args.resamples
        )[1],
    }
    _, prior_pass = timed(token_log_probs, model, tokens)
    total = sampling + scoring
    results = {
        "compositions": args.num,
        "length": args.length,
        "model": model_name,
        "corpus": corpus_path,
        "bootstrap_resamples": args.resamples,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "seconds": {
            "corpus_index_build_once": round(index_seconds, 2),
            "sampling_with_log_probs": round(sampling, 2),
            "scoring_all_metrics": round(scoring, 2),
            "sample_and_score": round(total, 2),
            "extra_prior_pass_for_tuned_models": round(prior_pass, 2),
            "phases_alone": {k: None if v is None else round(v, 2) for k, v in phases.items()},
        },
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": total <= BUDGET_SECONDS,
        "headline": {
            name: round(evaluation.metrics[name].value, 4)
            for name in ("copy_rate_8gram", "distinct_4gram", "log_prior_per_token", "not_in_key")
            if name in evaluation.metrics
        },
    }
    print(json.dumps(results, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"{args.num:,} compositions sampled in {sampling:.1f} s and scored in {scoring:.1f} s: {total:.1f} s "
        f"({'within' if total <= BUDGET_SECONDS else 'over'} the {BUDGET_SECONDS:.0f} s budget); wrote {out}"
    )


if __name__ == "__main__":
    main()
