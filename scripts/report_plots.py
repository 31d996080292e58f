"""Matplotlib figures of the comparison report: metric distributions, interval and pitch-class histograms,
piano rolls. Every function writes one PNG and returns its path. Figures are built without pyplot, so no
display and no global backend state are involved."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from notetune.pretrained.encoding import tokens_to_notes
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary
from notetune.rewards.evaluation import Evaluation

PITCH_CLASS_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
DISTRIBUTION_METRICS = {
    "log_prior_per_token": "nats per token",
    "kl_per_token": "nats per token",
    "longest_copied_span": "steps",
    "pitch_range": "semitones",
    "n_pitch_classes_used": "pitch classes",
    "pitch_class_entropy": "bits",
    "scale_consistency": "share of notes",
    "rest_rate": "share of steps",
    "hold_rate": "share of steps",
}
"""Per-melody figures drawn as box plots (name → y-axis unit), one panel each when any evaluation has them."""
COLORS = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_metric_distributions(evaluations: list[Evaluation], path: Path) -> Path:
    """Box plots of per-melody figures, one panel per metric, one box per sample set (means as dots)."""
    names = [n for n in DISTRIBUTION_METRICS if any(n in e.metrics for e in evaluations)]
    columns = 3
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4.2 * columns, 2.9 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    labels = [e.label for e in evaluations]
    for axis, name in zip(axes.flat, names, strict=False):
        data = [e.metrics[name].per_unit() if name in e.metrics else np.zeros(0) for e in evaluations]
        positions = [i for i, values in enumerate(data) if values.size]
        boxes = axis.boxplot(
            [data[i] for i in positions],
            positions=positions,
            widths=0.6,
            showmeans=True,
            showfliers=False,
            patch_artist=True,
            meanprops={"marker": "o", "markerfacecolor": "white", "markeredgecolor": "black"},
        )
        for patch, i in zip(boxes["boxes"], positions, strict=True):
            patch.set_facecolor(COLORS[i % len(COLORS)])
            patch.set_alpha(0.6)
        axis.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
        axis.set_title(name, fontsize=10)
        axis.set_ylabel(DISTRIBUTION_METRICS[name], fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.suptitle("Per-melody figures (box: quartiles, whiskers: 1.5 IQR, dot: mean)", fontsize=11)
    figure.tight_layout()
    return _save(figure, path)


def _grouped_bars(axis: Axes, evaluations: list[Evaluation], shares: list[np.ndarray], ticks: list[str]) -> None:
    width = 0.8 / max(len(evaluations), 1)
    x = np.arange(len(ticks))
    for i, (evaluation, values) in enumerate(zip(evaluations, shares, strict=True)):
        axis.bar(
            x + (i - (len(evaluations) - 1) / 2) * width,
            values,
            width,
            label=evaluation.label,
            color=COLORS[i % len(COLORS)],
            alpha=0.8,
        )
    axis.set_xticks(x, ticks, fontsize=8)
    axis.set_ylabel("share")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def plot_interval_histogram(evaluations: list[Evaluation], path: Path) -> Path:
    """Shares of signed melodic intervals between consecutive notes, −12..+12 semitones (wider: end bins)."""
    figure = Figure(figsize=(12, 3.4))
    axis = figure.subplots()
    size = len(evaluations[0].interval_counts) // 2
    ticks = [f"≤−{size}" if i == -size else f"≥+{size}" if i == size else f"{i:+d}" for i in range(-size, size + 1)]
    _grouped_bars(axis, evaluations, [_shares(e.interval_counts) for e in evaluations], ticks)
    axis.set_xlabel("interval to the next note (semitones)")
    axis.set_title("Melodic intervals")
    return _save(figure, path)


def plot_pitch_class_histogram(evaluations: list[Evaluation], path: Path) -> Path:
    """Shares of notes per pitch class (each note counted once)."""
    figure = Figure(figsize=(8, 3.4))
    axis = figure.subplots()
    _grouped_bars(axis, evaluations, [_shares(e.pitch_class_counts) for e in evaluations], list(PITCH_CLASS_NAMES))
    axis.set_xlabel("pitch class")
    axis.set_title("Pitch classes")
    return _save(figure, path)


SHORT_ROLL_STEPS = 32
"""Piano rolls of up to this many steps are 4 inches wide; longer ones keep the same inches per step."""


def plot_piano_roll(
    tokens: np.ndarray,
    path: Path,
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    color: str = COLORS[0],
    steps_per_bar: int | None = None,
) -> Path:
    """One melody as a piano roll: a bar per note (pitch × time), beat and bar lines, the C's named.

    Long melodies get a proportionally wider figure (the report scrolls it); ``steps_per_bar`` places the
    bar lines (default: 4/4)."""
    notes = tokens_to_notes(tokens, vocab)
    length = len(tokens)
    figure = Figure(figsize=(4.0 * max(1.0, length / SHORT_ROLL_STEPS), 1.7))
    axis = figure.subplots()
    pitches = [n.pitch for n in notes] or [60]
    low, high = min(pitches) - 1.5, max(pitches) + 1.5
    for note in notes:
        axis.add_patch(
            Rectangle((note.start, note.pitch - 0.4), note.end - note.start, 0.8, color=color, ec="black", lw=0.5)
        )
    beat = vocab.steps_per_quarter
    bar = steps_per_bar or 4 * beat
    for step in range(0, length + 1, beat):
        downbeat = step % bar == 0
        axis.axvline(step, color="black" if downbeat else "0.85", lw=1.2 if downbeat else 0.8, zorder=0)
    axis.set_xlim(0, length)
    axis.set_ylim(low, high)
    # Name the lowest and highest notes, and every C not crowding them.
    extremes = {min(pitches), max(pitches)}
    c_notes = {p for p in range(min(pitches), max(pitches) + 1) if p % 12 == 0}
    named = sorted(extremes | {c for c in c_notes if all(abs(c - e) >= 3 for e in extremes)})
    axis.set_yticks(named, [f"{PITCH_CLASS_NAMES[p % 12]}{p // 12 - 1}" for p in named])
    axis.set_xticks(range(0, length + 1, bar))
    axis.tick_params(labelsize=8)
    axis.set_xlabel("16th-note step", fontsize=8)
    return _save(figure, path)


def plot_bar_similarity(evaluation: Evaluation, path: Path, color_map: str = "viridis") -> Path:
    """The set's bar-level self-similarity matrix: the share of agreeing steps between every two bars,
    averaged over the pieces (:func:`~notetune.rewards.structure.phrase_similarity` at bar length)."""
    matrix = np.asarray(evaluation.structure["bar_similarity"], dtype=np.float64)
    bars = matrix.shape[0]
    figure = Figure(figsize=(3.6, 3.1))
    axis = figure.subplots()
    image = axis.imshow(matrix, vmin=0.0, vmax=1.0, cmap=color_map, origin="upper")
    ticks = range(0, bars, max(1, bars // 8))
    axis.set_xticks(list(ticks), [str(i + 1) for i in ticks], fontsize=8)
    axis.set_yticks(list(ticks), [str(i + 1) for i in ticks], fontsize=8)
    axis.set_xlabel("bar", fontsize=8)
    axis.set_ylabel("bar", fontsize=8)
    axis.set_title(f"{evaluation.label}: bar self-similarity", fontsize=9)
    colorbar = figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    colorbar.ax.tick_params(labelsize=7)
    return _save(figure, path)


OVEROPTIMISATION = ("reward_learned", "judge_share")
"""The figures of the overoptimisation curve (a learned reward, and a judge's preference: ``tune --judge``)."""


def _series(evaluations: list[dict], statistic: str) -> np.ndarray:
    """One figure over a run's evaluations (NaN where an evaluation lacks it)."""
    return np.array([np.nan if e["stats"].get(statistic) is None else e["stats"][statistic] for e in evaluations])


def trajectory_panels(record: dict) -> list[tuple[str, str, float | None]]:
    """(statistic, title, bound) of each panel of :func:`plot_run_trajectories`: the targets, the KL, and the
    overoptimisation curve when the run's evaluations carry a learned reward and a judge's share."""
    evaluations = record.get("evaluations") or []
    rows = (record.get("targets") or {}).get("targets", [])
    panels = [(row["statistic"], row["target"], row.get("bound")) for row in rows]
    panels.append(("kl_per_composition", "KL(π‖prior) per composition (nats)", None))
    if all(any(name in e["stats"] for e in evaluations) for name in OVEROPTIMISATION) and evaluations:
        panels.append((OVEROPTIMISATION[0], "learned reward (left) and the judge's preference (right, black)", None))
    return panels


def plot_run_trajectories(record: dict, path: Path) -> Path:
    """A tuning run over training, from its run.json: each target's figure (its bound dashed, the chosen
    evaluation marked) and the KL to the prior per composition, one panel each; with a learned reward and a
    judge (``tune --judge``), the overoptimisation curve: both over training in one panel."""
    evaluations = record.get("evaluations") or []
    steps = np.array([e["step"] for e in evaluations], dtype=float)
    panels = trajectory_panels(record)
    curve = panels[-1][0] == OVEROPTIMISATION[0]
    chosen = (record.get("chosen") or {}).get("step")
    columns = min(3, len(panels))
    figure = Figure(figsize=(4.2 * columns, 2.8 * -(-len(panels) // columns)))
    axes = figure.subplots(-(-len(panels) // columns), columns, squeeze=False)
    for i, (axis, (statistic, title, bound)) in enumerate(zip(axes.flat, panels, strict=False)):
        axis.plot(steps / 1e6, _series(evaluations, statistic), marker="o", markersize=3, color=COLORS[i % len(COLORS)])
        if curve and statistic == OVEROPTIMISATION[0]:
            judge = axis.twinx()
            judge.plot(steps / 1e6, _series(evaluations, "judge_share"), marker="s", markersize=3, color="black")
            judge.tick_params(labelsize=8)
        if bound is not None:
            axis.axhline(bound, linestyle="--", color="black", linewidth=1, label="bound")
        if chosen is not None and chosen in steps:
            axis.axvline(chosen / 1e6, color="grey", linewidth=1, alpha=0.6, label="chosen")
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("environment steps (millions)", fontsize=8)
        axis.tick_params(labelsize=8)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return _save(figure, path)
