"""``notetune sample``: melodies from a prior or a tuned model, as MIDI/MusicXML/WAV plus samples.npz."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from notetune.pretrained.checkpoint import find_checkpoint, load_checkpoint
from notetune.pretrained.constraints import control_inputs, format_primer
from notetune.pretrained.export import FORMATS, export_melodies
from notetune.pretrained.piece import PieceFields, piece_from_config
from notetune.pretrained.sampling import sample_tokens
from notetune.pretrained.transpose import PRIOR_KEY, key_transposition, transpose_model
from notetune.rewards.keys import Key

from . import config


@dataclass
class SampleConfig(PieceFields):
    """Settings of `notetune sample`."""

    model: str = "default"
    """Checkpoint directory, tuning run directory, or 'default' for the shipped prior."""
    num: int = 16
    """Number of melodies."""
    out: str = "out/samples"
    """Output directory."""
    seed: int = 0
    """Random seed (same seed, same melodies)."""
    temperature: float = 1.0
    """Softmax temperature (below 1 is more conservative)."""
    format: str = "midi"
    """Comma-separated file formats: midi, musicxml, wav (samples.npz is always written)."""
    key: str | None = None
    """Key to write in, e.g. 'D minor': the model is transposed from its own key (default: its own key)."""
    primer: str = ""
    """Melody to continue: a MIDI file or one item per 16th note, e.g. '60 _ 62 _ 64 _ _ _' (_ holds,
    r rests). Kept at the start of the MIDI/MusicXML/WAV files, left out of samples.npz."""
    constraint: list[str] = field(default_factory=list)
    """Constraints applied as masks while sampling: 'step:0=C4', 'pitches=C,D,E,G,A', 'rhythm=x...x...'."""


def register(parser: argparse.ArgumentParser):
    parser.add_argument("--config", help="TOML file with SampleConfig fields")
    config.add_arguments(parser, SampleConfig)
    return run


def parse_formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    formats = tuple("midi" if f in ("mid", "midi") else "musicxml" if f in ("xml", "musicxml") else f for f in formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise config.ConfigError(f"unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}")
    return formats


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(SampleConfig, args, args.config)
    formats = parse_formats(cfg.format)
    model, model_config = load_checkpoint(cfg.model)
    model_key = Key.parse(model_config.get("key") or PRIOR_KEY)
    key = Key.parse(cfg.key) if cfg.key else model_key
    semitones = key_transposition(model_key, key)
    model = transpose_model(model, semitones)
    piece = piece_from_config(cfg, model.vocab)
    if cfg.num < 1:
        raise config.ConfigError(f"--num must be at least 1 (got {cfg.num})")
    if not cfg.temperature > 0:
        raise config.ConfigError(f"--temperature must be positive, got {cfg.temperature} (e.g. --temperature 1.0)")
    primer, allowed = control_inputs(cfg.primer, cfg.constraint, piece.length, model.vocab)
    started = time.perf_counter()
    tokens = sample_tokens(
        model,
        cfg.num,
        piece.length,
        cfg.temperature,
        cfg.seed,
        primer=primer,
        allowed=allowed,
        form=piece.strict_layout,
    )
    seconds = time.perf_counter() - started
    export_melodies(
        tokens,
        cfg.out,
        formats,
        model.vocab,
        key=str(key),
        primer=primer,
        meter=piece.meter,
        metadata={
            "model": str(find_checkpoint(cfg.model)),
            "seed": cfg.seed,
            "temperature": cfg.temperature,
            **piece.settings(),
            "key": str(key),
            "transposed_semitones": semitones,
            "primer": format_primer(primer, model.vocab),
            "constraint": list(cfg.constraint),
        },
    )
    control = [f"in {key}" + (f" (model transposed {semitones:+d} semitones)" if semitones else "")]
    if primer is not None:
        control.append(f"after a primer of {len(primer)} steps")
    if allowed is not None:
        control.append(f"under {len(cfg.constraint)} constraint(s)")
    print(
        f"sampled {cfg.num} melodies × {piece.describe()} {', '.join(control)} in {seconds:.2f} s "
        f"({cfg.num * piece.length / max(seconds, 1e-9):,.0f} tokens/s); wrote {cfg.out} ({', '.join(formats)})"
    )
    return 0
