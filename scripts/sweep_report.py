"""A sweep's summary: ``summary.json``, ``summary.md``, a printed table and ``pareto.png`` (music-theory
reward against log p_prior per note, Pareto-optimal trials marked); for trials with targets also
``frontier.png`` (targets met against KL, the frontier marked); and an HTML section for ``compare``.

Everything is read from the sweep directory (``sweep.json`` and the trials' ``run.json``), so a summary can
be rebuilt at any time, without Ray. Figures are drawn without pyplot (no display, no global backend).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from notetune.agents.sweep import FRONTIER_KL, PARETO_X, PARETO_Y, load_sweep_file, summarize_sweep

TABLE_METRICS = (
    "music_reward",
    "log_prior_per_token",
    "kl_per_composition",
    "starts_with_tonic",
    "leaps_resolved",
    "not_in_key",
    "in_motif",
    "distinct_melodies",
    "hold_share",
    "rest_share",
)
"""Columns of summary.md after the swept values (then each reward term, steps, seconds)."""
PRINTED_METRICS = (
    "music_reward",
    "log_prior_per_token",
    "kl_per_composition",
    "starts_with_tonic",
    "leaps_resolved",
    "not_in_key",
)
"""Columns of the table printed at the end of `notetune sweep`."""
SHORT_TITLES = {
    "music_reward": "music",
    "log_prior_per_token": "log p/note",
    "kl_per_composition": "KL",
    "starts_with_tonic": "tonic",
    "leaps_resolved": "leaps res.",
    "not_in_key": "not in key",
    "in_motif": "in motif",
    "distinct_melodies": "distinct",
    "hold_share": "holds",
    "rest_share": "rests",
}


def write_sweep_summary(sweep_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Write ``summary.json``, ``summary.md``, ``pareto.png`` and (with targets) ``frontier.png`` into the sweep
    directory."""
    sweep_dir = Path(sweep_dir)
    sweep = load_sweep_file(sweep_dir)
    rows = summarize_sweep(sweep_dir)
    paths = {
        "json": sweep_dir / "summary.json",
        "markdown": sweep_dir / "summary.md",
        "pareto": sweep_dir / "pareto.png",
    }
    summary = {
        "metric": sweep["metric"],
        "mode": sweep["mode"],
        "swept": sweep["swept"],
        "pareto_axes": {"x": PARETO_X, "y": PARETO_Y},
        "trials": rows,
    }
    paths["json"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    paths["markdown"].write_text(format_markdown(rows, sweep["swept"], sweep["metric"], sweep["mode"]))
    write_pareto_plot(rows, paths["pareto"])
    if any(row["targets_met"] is not None for row in rows):
        paths["frontier"] = write_frontier_plot(rows, sweep_dir / "frontier.png")
    return rows, paths


def format_markdown(rows: list[dict[str, Any]], swept: list[str], metric: str, mode: str) -> str:
    """The summary as a Markdown table: swept values, headline figures, reward terms, status."""
    terms = list(dict.fromkeys(term for row in rows for term in row["reward_terms"]))
    header = (
        ["trial", "status"]
        + swept
        + [SHORT_TITLES.get(m, m) for m in TABLE_METRICS]
        + [f"r:{t}" for t in terms]
        + ["targets met", "steps", "seconds", "Pareto", "error"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (
            [row["trial"] + (" ★" if row["best"] else ""), row["status"]]
            + [_format(row["params"].get(name)) for name in swept]
            + [_format(row["metrics"].get(m)) for m in TABLE_METRICS]
            + [_format(row["reward_terms"].get(t)) for t in terms]
            + [
                _targets_cell(row),
                _format(row["steps"]),
                "–" if row["seconds"] is None else f"{row['seconds']:.1f}",
                "yes" if row["pareto"] else "",
                (row["error"] or "").replace("|", "\\|"),
            ]
        )
        lines.append("| " + " | ".join(cells) + " |")
    finished = sum(row["status"] == "finished" for row in rows)
    notes = [
        "",
        f"{len(rows)} trials, {finished} finished. ★ = best by {metric} ({mode}). Pareto = no other trial "
        "has both more music reward and a higher log p_prior per note. r:NAME = that reward term's mean per "
        "composition in the final evaluation. targets met = of the trial's own targets, in run.json "
        "(⊙ = on the frontier: no other trial meets as many with less KL). Each trial is a tuning run "
        "directory under trials/.",
    ]
    return "\n".join(lines + notes) + "\n"


def format_text_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table for the terminal: trial, status, headline figures, Pareto/best marks, error."""
    header = ["trial", "status"] + [SHORT_TITLES[m] for m in PRINTED_METRICS] + ["", "error"]
    lines = [header]
    for row in rows:
        marks = ("P" if row["pareto"] else "") + ("★" if row["best"] else "")
        lines.append(
            [row["trial"], row["status"]]
            + [_format(row["metrics"].get(m)) for m in PRINTED_METRICS]
            + [marks, _shorten(row["error"] or "", 70)]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines]
    return "\n".join(text + ["P = Pareto-optimal (music reward vs log p_prior per note), ★ = best by the metric"])


def _scatter_trials(axes: Any, xs: list[float], ys: list[float]) -> None:
    """The trials off the front (Pareto or targets frontier): open grey circles."""
    if xs:
        axes.scatter(xs, ys, s=36, facecolors="none", edgecolors="0.45", label="trial")


def write_pareto_plot(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Scatter of finished trials, music reward (y) against log p_prior per note (x); Pareto-optimal trials
    are filled, labelled and joined; the untuned model is a star when every trial shares it."""
    path = Path(path)
    points = [row for row in rows if _finite(row["metrics"].get(PARETO_X)) and _finite(row["metrics"].get(PARETO_Y))]
    front = sorted((row for row in points if row["pareto"]), key=lambda row: row["metrics"][PARETO_X])
    others = [row for row in points if not row["pareto"]]
    figure = Figure(figsize=(7.5, 5.0))
    axes = figure.add_subplot()
    _scatter_trials(axes, [r["metrics"][PARETO_X] for r in others], [r["metrics"][PARETO_Y] for r in others])
    if front:
        axes.plot(
            [r["metrics"][PARETO_X] for r in front],
            [r["metrics"][PARETO_Y] for r in front],
            color="#c0392b",
            marker="o",
            markersize=7,
            linewidth=1.2,
            label="Pareto-optimal",
        )
        xs = [r["metrics"][PARETO_X] for r in points]
        middle = (min(xs) + max(xs)) / 2
        for i, row in enumerate(front):
            right_half = row["metrics"][PARETO_X] > middle  # label towards the centre, inside the axes
            axes.annotate(
                _shorten(row["trial"], 40),
                (row["metrics"][PARETO_X], row["metrics"][PARETO_Y]),
                textcoords="offset points",
                xytext=(-6 if right_half else 6, 8 - 12 * (i % 3)),  # staggered: neighbours do not overprint
                ha="right" if right_half else "left",
                fontsize=7,
                color="#c0392b",
            )
    untuned = _shared_untuned(points)
    if untuned is not None:
        axes.scatter([untuned[PARETO_X]], [untuned[PARETO_Y]], marker="*", s=160, color="0.2", label="untuned prior")
    not_shown = len(rows) - len(points)
    axes.set_xlabel("log p_prior per note (nats; higher = closer to the prior)")
    axes.set_ylabel("music-theory reward per composition")
    axes.set_title(
        f"{len(points)} trials, {len(front)} Pareto-optimal"
        + (f" ({not_shown} without results not shown)" if not_shown else ""),
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    if points or untuned is not None:
        axes.legend(fontsize=8, loc="best")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def write_frontier_plot(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Targets met (y) against KL per composition (x) of the trials with targets: the cost of meeting more of
    them. The frontier (no trial meets as many with less KL) is joined as a staircase and labelled."""
    path = Path(path)
    points = [row for row in rows if row["targets_met"] is not None and _finite(row["metrics"].get(FRONTIER_KL))]
    front = sorted((row for row in points if row["frontier"]), key=lambda row: row["metrics"][FRONTIER_KL])
    figure = Figure(figsize=(7.5, 5.0))
    axes = figure.add_subplot()
    others = [row for row in points if not row["frontier"]]
    _scatter_trials(axes, [r["metrics"][FRONTIER_KL] for r in others], [r["targets_met"] for r in others])
    if front:
        axes.step(
            [r["metrics"][FRONTIER_KL] for r in front],
            [r["targets_met"] for r in front],
            where="post",
            color="#1f6fb2",
            marker="o",
            markersize=7,
            linewidth=1.2,
            label="frontier",
        )
        for i, row in enumerate(front):
            axes.annotate(
                _shorten(row["trial"], 40),
                (row["metrics"][FRONTIER_KL], row["targets_met"]),
                textcoords="offset points",
                xytext=(6, -12 - 10 * (i % 2)),
                fontsize=7,
                color="#1f6fb2",
            )
    most = max((row["targets_total"] for row in points), default=0)
    if most:
        axes.axhline(most, color="0.6", linestyle="--", linewidth=0.8, label=f"all {most} targets")
        axes.set_ylim(-0.5, most + 0.8)
    axes.set_xlabel("KL(π‖prior) per composition (nats; less = closer to the prior)")
    axes.set_ylabel("targets met (of the trial's own)")
    axes.set_title(f"{len(points)} trials with targets, {len(front)} on the frontier", fontsize=10)
    axes.grid(alpha=0.3)
    if points:
        axes.legend(fontsize=8, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def sweep_html_section(sweep_dir: str | Path, out_dir: str | Path, label: str | None = None) -> str:
    """An HTML fragment for `notetune compare`: the summary table and the Pareto plot, which is written to
    ``out_dir/plots/pareto-<n>.png`` (relative ``src``, like the report's other plots)."""
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    sweep = load_sweep_file(sweep_dir)
    rows = summarize_sweep(sweep_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    index = len(list(plots.glob("pareto-*.png")))
    plot = write_pareto_plot(rows, plots / f"pareto-{index}.png")
    frontier = None
    if any(row["targets_met"] is not None for row in rows):
        frontier = write_frontier_plot(rows, plots / f"frontier-{index}.png")
    e = html.escape
    columns = (
        ["trial", "status"]
        + sweep["swept"]
        + [SHORT_TITLES[m] for m in TABLE_METRICS]
        + ["targets met", "Pareto", "error"]
    )
    parts = [
        f"<h3>Sweep {e(label or sweep_dir.name)}</h3>",
        f'<p class="note">{len(rows)} trials from <code>{e(str(sweep_dir))}</code>; ★ = best by '
        f"{e(sweep['metric'])} ({e(sweep['mode'])}).</p>",
        "<table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr></thead><tbody>",
    ]
    for row in rows:
        cells = (
            [row["trial"] + (" ★" if row["best"] else ""), row["status"]]
            + [_format(row["params"].get(name)) for name in sweep["swept"]]
            + [_format(row["metrics"].get(m)) for m in TABLE_METRICS]
            + [_targets_cell(row), "yes" if row["pareto"] else "", row["error"] or ""]
        )
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    parts.append(
        f'<img class="plot" src="{e(plot.relative_to(out_dir).as_posix())}" '
        'alt="music reward against log p_prior per note, Pareto-optimal trials marked">'
    )
    if frontier is not None:
        parts.append(
            f'<img class="plot" src="{e(frontier.relative_to(out_dir).as_posix())}" '
            'alt="targets met against KL per composition, the frontier marked">'
        )
    return "\n".join(parts)


def _shared_untuned(rows: list[dict[str, Any]]) -> dict[str, float] | None:
    """The untuned model's evaluation when every trial measured the same one (same prior, seed, rewards)."""
    baselines = [row.get("untuned") for row in rows]
    if not baselines or any(b is None for b in baselines):
        return None
    first = baselines[0]
    same = all(
        abs(b.get(axis, math.nan) - first.get(axis, math.nan)) < 1e-9
        for b in baselines
        for axis in (PARETO_X, PARETO_Y)
    )
    return first if same and _finite(first.get(PARETO_X)) and _finite(first.get(PARETO_Y)) else None


def _targets_cell(row: dict[str, Any]) -> str:
    if row["targets_met"] is None:
        return "–"
    return f"{row['targets_met']}/{row['targets_total']}" + (" ⊙" if row["frontier"] else "")


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan"
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return "+".join(_format(v) for v in value)
    return str(value)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_default(value: Any) -> Any:
    return str(value)
