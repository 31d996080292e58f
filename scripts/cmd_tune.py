"""``notetune tune``: fine-tune a prior with RL (or from preference pairs, ``--algo dpo``); ``--resume RUN_DIR``
continues a killed RL run."""

from __future__ import annotations

import argparse
import json

from notetune.agents.config import TuneConfig

from . import config


def register(parser: argparse.ArgumentParser):
    parser.add_argument("--config", help="TOML file with TuneConfig fields")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint")
    config.add_arguments(parser, TuneConfig)
    return run


def run(args: argparse.Namespace) -> int:
    from notetune.agents.run import TuneRun, load_run

    if args.resume:
        tune_run = load_run(args.resume)
    else:
        cfg = config.from_args(TuneConfig, args, args.config)
        if cfg.algo == "dpo":
            return run_dpo(cfg)
        tune_run = TuneRun(cfg)
    record = tune_run.run()
    chosen = record["chosen"]
    print(f"run directory: {tune_run.out}")
    print(
        f"stopped: {record['stop_reason']} after {record['steps']:,} steps in {record['seconds']:.0f} s "
        f"({record['steps_per_second']:,.0f} steps/s)"
    )
    print(f"exported {chosen['path']} (evaluation at step {chosen['step']}): {chosen['why']}")
    for row in record.get("targets", {}).get("targets", []):
        interval = row["ci95"] and f" [{row['ci95'][0]:.4g}, {row['ci95'][1]:.4g}]"
        figure = "n/a" if row["figure"] is None else f"{row['figure']:.4g}{interval or ''}"
        multiplier = "" if row["multiplier"] is None else f", λ = {row['multiplier']:.3g}"
        print(f"target {row['target']}: {figure}, {'met' if row['met'] else 'MISSED'}{multiplier}")
    for warning in record.get("targets", {}).get("warnings", []):
        print(f"warning: {warning}")
    if record["alarms"]:
        print(f"{len(record['alarms'])} reward-hacking alarm(s); see run.json")
    if record["final_metrics"]:
        keys = (
            "music_reward",
            "kl_per_composition",
            "log_prior_per_token",
            "starts_with_tonic",
            "leaps_resolved",
            "not_in_key",
            "hold_share",
            "rest_share",
            "distinct_melodies",
            "distinct_4gram",
        )
        print(
            json.dumps(
                {k: round(record["final_metrics"][k], 4) for k in keys if k in record["final_metrics"]},
                indent=2,
            )
        )
    return 0


def run_dpo(cfg: TuneConfig) -> int:
    from notetune.agents.dpo import tune_dpo

    from .cmd_reward import print_dpo_record

    record = tune_dpo(cfg)
    print(f"run directory: {cfg.out}")
    print_dpo_record(record)
    return 0
