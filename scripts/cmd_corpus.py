"""``notetune corpus build``: music21's bundled melodies and/or MIDI folders → one token file."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

from notetune.pretrained.corpus import MUSIC21_COLLECTIONS, build_corpus, midi_jobs, music21_jobs
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary

from . import config


@dataclass
class CorpusConfig:
    out: str = "pretrained/data/corpus.npz"
    """Token file to write (a JSON summary is written beside it)."""
    music21: list[str] = field(default_factory=lambda: list(MUSIC21_COLLECTIONS))
    """music21 collections to include (essenFolksong, oneills1850, ryansMammoth, airdsAirs, miscFolk, bach)."""
    no_music21: bool = False
    """Skip music21's corpus entirely (use only MIDI folders)."""
    midi: list[str] = field(default_factory=list)
    """Folders of MIDI files to include (searched recursively)."""
    min_pitch: int = DEFAULT_VOCABULARY.min_pitch
    """Lowest MIDI pitch of the vocabulary."""
    max_pitch: int = DEFAULT_VOCABULARY.max_pitch
    """Highest MIDI pitch of the vocabulary."""
    workers: int = 2
    """Parallel parsing processes."""


def register(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build a corpus token file")
    build.add_argument("--config", help="TOML file with CorpusConfig fields")
    config.add_arguments(build, CorpusConfig)
    return run


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(CorpusConfig, args, args.config)
    vocab = Vocabulary(cfg.min_pitch, cfg.max_pitch)
    jobs = [] if cfg.no_music21 else list(music21_jobs(cfg.music21))
    for folder in cfg.midi:
        jobs.extend(midi_jobs(folder))
    summary = build_corpus(jobs, cfg.out, vocab, workers=cfg.workers)
    print(json.dumps(summary.to_dict(), indent=2))
    print(f"wrote {cfg.out}")
    return 0
