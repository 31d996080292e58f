"""``notetune sample``: melodies from a prior or a tuned model, as MIDI/MusicXML/WAV plus samples.npz."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from notetune.pretrained.checkpoint import find_checkpoint, load_checkpoint
from notetune.pretrained.export import FORMATS, export_melodies
from notetune.pretrained.sampling import sample_tokens

from . import config


@dataclass
class SampleConfig:
    """Settings of `notetune sample`."""

    model: str = "default"
    """Checkpoint directory, tuning run directory, or 'default' for the shipped prior."""
    num: int = 16
    """Number of melodies."""
    out: str = "out/samples"
    """Output directory."""
    seed: int = 0
    """Random seed (same seed, same melodies)."""
    length: int = 32
    """Steps (16th notes) per melody."""
    temperature: float = 1.0
    """Softmax temperature (below 1 is more conservative)."""
    format: str = "midi"
    """Comma-separated file formats: midi, musicxml, wav (samples.npz is always written)."""


def register(parser: argparse.ArgumentParser):
    parser.add_argument("--config", help="TOML file with SampleConfig fields")
    config.add_arguments(parser, SampleConfig)
    return run


def parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    formats = tuple("midi" if f in ("mid", "midi") else "musicxml" if f in ("xml", "musicxml") else f
                    for f in formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise config.ConfigError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return formats


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(SampleConfig, args, args.config)
    formats = parse_formats(cfg.format)
    model, model_config = load_checkpoint(cfg.model)
    started = time.perf_counter()
    tokens = sample_tokens(model, cfg.num, cfg.length, cfg.temperature, cfg.seed)
    seconds = time.perf_counter() - started
    export_melodies(tokens, cfg.out, formats, model.vocab, key=model_config.get("key"),
                    metadata={"model": str(find_checkpoint(cfg.model)), "seed": cfg.seed,
                              "temperature": cfg.temperature, "length": cfg.length})
    print(f"sampled {cfg.num} melodies × {cfg.length} steps in {seconds:.2f} s "
          f"({cfg.num * cfg.length / max(seconds, 1e-9):,.0f} tokens/s); wrote {cfg.out} ({', '.join(formats)})")
    return 0
