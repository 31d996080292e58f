"""``notetune pretrain``: train a Note RNN prior on a corpus file."""

from __future__ import annotations

import argparse
import json

from notetune.pretrained.train import PretrainConfig, pretrain

from . import config


def register(parser: argparse.ArgumentParser):
    parser.add_argument("--config", help="TOML file with PretrainConfig fields")
    config.add_arguments(parser, PretrainConfig)
    return run


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(PretrainConfig, args, args.config)
    metrics = pretrain(cfg)
    summary = {k: v for k, v in metrics.items() if k != "history"}
    print(json.dumps(summary, indent=2))
    print(f"wrote {cfg.out}/model.safetensors and {cfg.out}/config.json")
    return 0
