"""``notetune listen``: blind A/B listening tests (``export`` a test, ``score`` the answers, optionally as
preference pairs) and ``simulate``, a simulated listener (the same command as ``notetune reward simulate``)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from notetune.agents.sources import load_source
from notetune.pretrained.checkpoint import model_exists
from notetune.pretrained.piece import PieceFields, piece_from_config

from . import config
from .cli import UserError
from .cmd_reward import SIMULATE_HELP, add_simulate_arguments, run_action
from .listening import KEY_FILE, export_listening_test, listening_preferences, score_listening_test


@dataclass
class ListenExportConfig(PieceFields):
    """Settings of `notetune listen export A B` (A and B: models, samples files, MIDI folders or the
    corpus)."""

    out: str = "out/listening"
    """Folder for the test: index.html, audio/, and the hidden key file."""
    pairs: int = 20
    """Pairs to judge (melody i of A against melody i of B)."""
    seed: int = 0
    """Sampling seed for models (the same for both) and the seed of the randomised order."""
    temperature: float = 1.0
    """Sampling temperature of models."""


@dataclass
class ListenScoreConfig:
    """Settings of `notetune listen score DIR ANSWERS.json [...]`."""

    json: str | None = None
    """Also write the result to this JSON file."""
    export_preferences: str | None = None
    """Also write the answers as preferences.jsonl for `notetune reward fit` (a = set A's melody, b = set B's,
    tie for no preference, unanswered pairs left out); refuses an existing file."""


def register(parser: argparse.ArgumentParser):
    actions = parser.add_subparsers(dest="listen_action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write a blind A/B test (HTML form + audio + hidden key)")
    export.add_argument("a", metavar="A", help="first sample set (model, samples.npz, MIDI folder or corpus)")
    export.add_argument("b", metavar="B", help="second sample set")
    export.add_argument("--config", help="TOML file with ListenExportConfig fields")
    config.add_arguments(export, ListenExportConfig)
    score = actions.add_parser("score", help="un-blind answer files and test the preference")
    score.add_argument("directory", metavar="DIR", help="the folder `notetune listen export` wrote")
    score.add_argument("answers", nargs="+", metavar="ANSWERS.json", help="answer files saved by the page")
    score.add_argument("--config", help="TOML file with ListenScoreConfig fields")
    config.add_arguments(score, ListenScoreConfig)
    add_simulate_arguments(actions.add_parser("simulate", help=SIMULATE_HELP + " (= notetune reward simulate)"))
    return run


def run(args: argparse.Namespace) -> int:
    if args.listen_action == "simulate":
        return run_action("simulate", args)
    return run_export(args) if args.listen_action == "export" else run_score(args)


def run_export(args: argparse.Namespace) -> int:
    cfg = config.from_args(ListenExportConfig, args, args.config)
    if cfg.pairs < 1:
        raise config.ConfigError("--pairs must be at least 1")
    piece = piece_from_config(cfg)
    sources = []
    for spec in (args.a, args.b):
        if not model_exists(spec):
            raise UserError(f"{spec} not found (give a model directory, samples.npz, MIDI folder or corpus)")
        sources.append(
            load_source(
                spec,
                num=cfg.pairs,
                length=piece.length,
                seed=cfg.seed,
                temperature=cfg.temperature,
                form=piece.strict_layout,
            )
        )
    page = export_listening_test(sources[0], sources[1], cfg.out, cfg.pairs, cfg.seed)
    print(
        f"wrote a blind test of {cfg.pairs} pairs: open {page} in a browser; the answers download as JSON.\n"
        f"The key is {Path(cfg.out) / KEY_FILE}: do not share it with listeners.\n"
        f"Score with: notetune listen score {cfg.out} ANSWERS.json"
    )
    return 0


def run_score(args: argparse.Namespace) -> int:
    cfg = config.from_args(ListenScoreConfig, args, args.config)
    if cfg.export_preferences and Path(cfg.export_preferences).exists():
        raise UserError(f"{cfg.export_preferences} exists; delete it or choose another --export-preferences")
    result = score_listening_test(args.directory, args.answers)
    print(result.summary())
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"wrote {cfg.json}")
    if cfg.export_preferences:
        path = Path(cfg.export_preferences)
        pairs = listening_preferences(args.directory, args.answers)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(pair.to_json() + "\n" for pair in pairs))
        print(f"wrote {len(pairs)} preference pairs to {path}; fit a reward model on them with `notetune reward fit`")
    return 0
