"""``notetune compare A B [C ...] --out DIR``: an HTML report comparing models, samples and the corpus."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from notetune.agents.evaluation import evaluate_source, reward_builder, reward_spec_for
from notetune.agents.sources import SampleSource, load_corpus_melodies, load_prior, load_source, reference_prior
from notetune.pretrained.checkpoint import model_exists
from notetune.pretrained.piece import PieceFields, piece_from_config
from notetune.rewards.evaluation import default_set_size

from . import config
from .cli import UserError
from .report_text import format_table


@dataclass
class CompareConfig(PieceFields):
    """Settings of `notetune compare` (the sample sets themselves are positional arguments)."""

    out: str = "out/report"
    """Report directory (index.html, plots, samples, metrics.json)."""
    num: int = 1000
    """Melodies per model (sampled) or corpus (random windows); files give at most this many."""
    seed: int = 0
    """Sampling seed, the same for every model, so sample i of each column shares a random stream."""
    temperature: float = 1.0
    """Sampling temperature of every model."""
    labels: list[str] = field(default_factory=list)
    """Column titles, one per sample set, in order (default: names derived from the paths)."""
    key: str | None = None
    """Key and mode, e.g. "G major": models are transposed to it through the vocabulary and the rules judge
    in it (default: each model's own key, else C major)."""
    prior: str = "auto"
    """Prior for log_prior_per_token and the KL estimate: 'auto' (the prior a tuned model was tuned from, else
    'default'), 'default', 'lookback', 'lookback128', a checkpoint directory, or 'none'."""
    corpus: str = "default"
    """Corpus file for the novelty metrics: 'default', a path, or 'none'."""
    reward: str | None = None
    """Reward spec for music_reward and each term's reward_<name>, the same for every set, e.g.
    "notetune,surprise_band" ('none': no reward figures; default: the tuned models' own spec and weights when they
    all agree, else notetune)."""
    paper_token_order: bool = False
    """Score Table 1 with tokens 0 and 1 swapped, as the published Note RNN emitted them."""
    samples_shown: int = 4
    """Melodies per set drawn as piano rolls, with audio, MIDI and MusicXML."""
    audio: bool = True
    """Render WAV audio for the shown melodies."""
    resamples: int = 1000
    """Bootstrap resamples per interval."""


def register(parser: argparse.ArgumentParser):
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SET",
        help="a model ('default', checkpoint or run directory), a samples.npz, a MIDI folder or the corpus file",
    )
    parser.add_argument("--config", help="TOML file with CompareConfig fields")
    config.add_arguments(parser, CompareConfig)
    return run


def run(args: argparse.Namespace) -> int:
    from notetune.agents.sweep import best_trial, is_sweep_dir, load_sweep_file, summarize_sweep

    from .report import run_html_section, write_report  # matplotlib: imported only when a report is written
    from .sweep_report import sweep_html_section

    cfg = config.from_args(CompareConfig, args, args.config)
    if cfg.num < 1 or cfg.length < 8 or cfg.samples_shown < 0:
        raise config.ConfigError(
            f"--num must be at least 1, --length at least 8 and --samples-shown at least 0 "
            f"(got {cfg.num}, {cfg.length} and {cfg.samples_shown})"
        )
    if cfg.labels and len(cfg.labels) != len(args.sources):
        raise config.ConfigError(f"{len(cfg.labels)} labels given for {len(args.sources)} sample sets")
    for spec in args.sources:
        if not model_exists(spec):
            raise UserError(f"{spec} not found (give a model directory, samples.npz, MIDI folder or corpus)")
    piece = piece_from_config(cfg)
    started = time.perf_counter()
    # A sweep directory adds its summary table and Pareto plot, and its best trial's model as a column.
    sections, specs, labels = [], [], []
    for i, spec in enumerate(args.sources):
        label = cfg.labels[i] if cfg.labels else None
        if not is_sweep_dir(spec):
            if (Path(spec) / "run.json").is_file():  # a tuning run: its targets and KL over training
                sections.append(run_html_section(spec, cfg.out, label))
            specs.append(spec)
            labels.append(label)
            continue
        sections.append(sweep_html_section(spec, cfg.out, label))
        rows = summarize_sweep(spec)
        sweep = load_sweep_file(spec)
        best = best_trial(rows, sweep["metric"], sweep["mode"])
        if best is not None:
            specs.append(rows[best]["directory"])
            labels.append(label or f"{Path(spec).name}: best trial {rows[best]['trial']}")
    if not specs:
        raise UserError("none of the sweeps has a finished trial to compare; give a model or samples as well")
    sources = [
        load_source(
            spec,
            num=cfg.num,
            length=piece.length,
            seed=cfg.seed,
            temperature=cfg.temperature,
            label=labels[i],
            key=cfg.key,
            form=piece.strict_layout,
        )
        for i, spec in enumerate(specs)
    ]
    _make_labels_distinct(sources)
    set_size = min(default_set_size(len(s.tokens)) for s in sources)  # one set size, so diversity compares
    prior = load_prior(reference_prior(cfg.prior, sources))
    reward = reward_spec_for(cfg.reward, sources)
    melodies = load_corpus_melodies(cfg.corpus) if reward is not None else None

    def rewards_for(source: SampleSource):
        if reward is None:
            return None
        return reward_builder(*reward, length=source.tokens.shape[1], vocab=source.vocab, corpus=melodies, piece=piece)

    evaluations = [
        evaluate_source(
            s,
            prior=prior,
            corpus=cfg.corpus,
            key=cfg.key,
            rewards=rewards_for(s),
            set_size=set_size,
            paper_token_order=cfg.paper_token_order,
            resamples=cfg.resamples,
            seed=cfg.seed,
            piece=piece,
        )
        for s in sources
    ]
    for evaluation in evaluations:
        evaluation.settings["reward"] = None if reward is None else {"spec": reward[0], "weights": reward[1]}
    index = write_report(evaluations, cfg.out, samples_shown=cfg.samples_shown, audio=cfg.audio, sections=sections)
    print(format_table(evaluations))
    print(f"\ncompared {len(evaluations)} sets in {time.perf_counter() - started:.1f} s; report: {index}")
    return 0


def _make_labels_distinct(sources: list[SampleSource]) -> None:
    seen: dict[str, int] = {}
    for source in sources:
        seen[source.label] = seen.get(source.label, 0) + 1
        if seen[source.label] > 1:
            source.label = f"{source.label} ({seen[source.label]})"
