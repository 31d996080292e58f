"""``notetune evaluate``: every metric of a model's samples (or of a samples file), with 95% intervals."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

from notetune.agents.evaluation import evaluate_source, reward_builder, reward_spec_for
from notetune.agents.sources import load_corpus_melodies, load_prior, load_source, reference_prior
from notetune.pretrained.checkpoint import SHIPPED_NAMES, model_exists
from notetune.pretrained.piece import PieceFields, piece_from_config

from . import config
from .cli import UserError
from .report_text import format_table


@dataclass
class EvaluateConfig(PieceFields):
    """Settings of `notetune evaluate`."""

    model: str | None = None
    """Model to sample: checkpoint or tuning run directory, or 'default' (the default without --samples)."""
    samples: str | None = None
    """Evaluate these melodies instead: a samples.npz, a folder of MIDI files, or the corpus file."""
    num: int = 1000
    """Melodies to sample from the model (or at most to read from --samples; 0 = all)."""
    seed: int = 0
    """Sampling seed (and bootstrap seed)."""
    temperature: float = 1.0
    """Sampling temperature of the model."""
    key: str | None = None
    """Key and mode, e.g. "G major": models are transposed to it through the vocabulary and the rules judge
    in it (default: the model's own key, else C major)."""
    prior: str = "auto"
    """Prior for log_prior_per_token and the KL estimate: 'auto' (the prior a tuned model was tuned from, else
    'default'), 'default', 'lookback', 'lookback128', a checkpoint directory, or 'none'."""
    corpus: str = "default"
    """Corpus file for the novelty metrics: 'default' (the shipped corpus), a path, or 'none'."""
    reward: str | None = None
    """Reward spec for music_reward and each term's reward_<name>, e.g. "notetune,surprise_band" ('none': no
    reward figures; default: a tuned model's own spec and weights, else notetune)."""
    paper_token_order: bool = False
    """Score Table 1 with tokens 0 and 1 swapped, as the published Note RNN emitted them."""
    resamples: int = 1000
    """Bootstrap resamples per interval."""
    json: str | None = None
    """Also write every number to this JSON file."""


def register(parser: argparse.ArgumentParser):
    parser.add_argument("--config", help="TOML file with EvaluateConfig fields")
    config.add_arguments(parser, EvaluateConfig)
    return run


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(EvaluateConfig, args, args.config)
    if cfg.model is not None and cfg.samples is not None:
        raise config.ConfigError("give either --model or --samples, not both")
    if cfg.num < 0 or cfg.resamples < 1:
        raise config.ConfigError("--num must be ≥ 0 and --resamples ≥ 1")
    started = time.perf_counter()
    spec = cfg.samples if cfg.samples is not None else (cfg.model or "default")
    if cfg.samples is not None and not Path(spec).exists():
        raise UserError(f"samples {spec} not found (give a samples.npz, a MIDI folder or a corpus file)")
    if cfg.samples is None and not model_exists(spec):
        raise UserError(f"model {spec} not found (give a checkpoint or run directory, or {SHIPPED_NAMES})")
    piece = piece_from_config(cfg)
    source = load_source(
        spec,
        num=cfg.num or None,
        length=piece.length,
        seed=cfg.seed,
        temperature=cfg.temperature,
        key=cfg.key,
        form=piece.strict_layout,
    )
    reward = reward_spec_for(cfg.reward, [source])
    rewards = None
    if reward is not None:
        melodies = load_corpus_melodies(cfg.corpus)
        rewards = reward_builder(
            *reward, length=source.tokens.shape[1], vocab=source.vocab, corpus=melodies, piece=piece
        )
    evaluation = evaluate_source(
        source,
        prior=load_prior(reference_prior(cfg.prior, [source])),
        corpus=cfg.corpus,
        key=cfg.key,
        rewards=rewards,
        paper_token_order=cfg.paper_token_order,
        resamples=cfg.resamples,
        seed=cfg.seed,
        piece=piece,
    )
    evaluation.settings["reward"] = None if reward is None else {"spec": reward[0], "weights": reward[1]}
    print(format_table([evaluation]))
    seconds = time.perf_counter() - started
    print(
        f"\n{len(source.tokens):,} melodies from {spec} evaluated in {seconds:.1f} s "
        f"(diversity within sets of {evaluation.settings['diversity_set_size']}; intervals: 95% bootstrap)"
    )
    if evaluation.settings.get("table1_windows"):
        print(f"Table 1 of these long pieces: on {evaluation.settings['table1_windows']}")
    if cfg.json:
        path = Path(cfg.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"config": config.to_dict(cfg), **evaluation.to_dict()}, indent=2) + "\n")
        print(f"wrote {path}")
    return 0
