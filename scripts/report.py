"""The comparison report: one self-contained ``index.html`` that opens from disk (no server, no internet).

The page links only to files written beside it: PNG plots and piano rolls, WAV audio, MIDI and MusicXML of the
shown samples, and ``metrics.json`` with every number. Columns are tested against the first one.
"""

from __future__ import annotations

import datetime
import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from notetune.pretrained.encoding import write_midi, write_musicxml
from notetune.pretrained.export import write_wav
from notetune.pretrained.meter import DEFAULT_METER
from notetune.rewards import PAPER_TABLE1
from notetune.rewards.evaluation import GROUPS, Evaluation, metric_info
from notetune.rewards.significance import compare_evaluations

from . import report_plots
from .report_text import format_interval, format_value, shown_metrics

SIGNIFICANCE = 0.05

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1250px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta, .note { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.88rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f4; position: sticky; top: 0; }
tr.group td { background: #fafafa; font-weight: 600; text-align: left; padding-top: 0.7rem; }
td .interval { color: #666; font-size: 0.8rem; margin-left: 0.35rem; white-space: nowrap; }
td .p { color: #888; font-size: 0.75rem; display: block; }
td .p.significant { color: #b00020; font-weight: 600; }
td.paper { color: #777; }
table.sources td, table.sources th { text-align: left; }
img.plot { max-width: 100%; display: block; margin: 0.8rem 0; }
.scroll { overflow-x: auto; }
.sample-grid { display: grid; gap: 1rem; }
.sample-grid h3 { margin: 0.5rem 0 0; }
figure.sample { margin: 0; padding: 0.5rem; border: 1px solid #e4e4e4; border-radius: 6px; }
figure.sample img { width: 100%; }
figure.sample .roll { overflow-x: auto; }
figure.sample img.long-roll { width: auto; max-width: none; height: 170px; }
.structure-grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.structure-grid figure { margin: 0; }
.structure-grid img { width: 360px; }
figure.sample audio { width: 100%; margin-top: 0.3rem; }
figcaption { font-size: 0.8rem; color: #444; }
dl.definitions dt { font-family: monospace; margin-top: 0.4rem; }
dl.definitions dd { margin-left: 1.2rem; color: #444; font-size: 0.88rem; }
"""


@dataclass
class ShownSample:
    """Files of one melody shown on the page, relative to the report directory."""

    index: int
    piano_roll: str
    midi: str
    musicxml: str
    audio: str | None
    long: bool = False
    """Wider than a column: the page scrolls it horizontally."""


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "set"


def export_shown_samples(
    evaluation: Evaluation, out: Path, folder: str, count: int, color: str, audio: bool = True
) -> tuple[list[ShownSample], set[str]]:
    """Piano roll, MIDI, MusicXML and (optionally) WAV of the first ``count`` melodies; returns files and
    renderers.

    For models sampled with the same seed, melody ``i`` of every column comes from the same random stream.
    """
    directory = out / "samples" / folder
    directory.mkdir(parents=True, exist_ok=True)
    key = evaluation.settings.get("key")
    steps_per_bar = evaluation.structure.get("steps_per_bar")
    shown, renderers = [], set()
    for index in range(min(count, len(evaluation.tokens))):
        melody = evaluation.tokens[index]
        stem = directory / f"sample_{index:02d}"
        report_plots.plot_piano_roll(melody, stem.with_suffix(".png"), evaluation.vocab, color, steps_per_bar)
        meter = evaluation.settings.get("meter", DEFAULT_METER)
        write_midi(melody, stem.with_suffix(".mid"), evaluation.vocab, meter=meter, key=key)
        write_musicxml(melody, stem.with_suffix(".musicxml"), evaluation.vocab, key, meter)
        audio_file = None
        if audio:
            renderers.add(write_wav(melody, stem.with_suffix(".wav"), evaluation.vocab))
            audio_file = stem.with_suffix(".wav")
        relative = stem.relative_to(out).as_posix()
        shown.append(
            ShownSample(
                index,
                relative + ".png",
                relative + ".mid",
                relative + ".musicxml",
                None if audio_file is None else relative + ".wav",
                len(melody) > report_plots.SHORT_ROLL_STEPS,
            )
        )
    return shown, renderers


def write_report(
    evaluations: list[Evaluation],
    out: str | Path,
    *,
    samples_shown: int = 4,
    audio: bool = True,
    title: str = "notetune comparison",
    sections: list[str] | tuple[str, ...] = (),
) -> Path:
    """Write ``out/index.html`` (plus plots, samples and ``metrics.json``) comparing the evaluations.

    ``sections`` are extra HTML fragments (e.g. a sweep's summary and Pareto plot) placed after the metrics.
    """
    if not evaluations:
        raise ValueError("nothing to compare: give at least one sample set")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = [e.label for e in evaluations]
    if len(set(labels)) != len(labels):
        raise ValueError(f"sample sets need distinct labels, got {labels}")
    plots = {
        "distributions": report_plots.plot_metric_distributions(evaluations, out / "plots" / "distributions.png"),
        "intervals": report_plots.plot_interval_histogram(evaluations, out / "plots" / "intervals.png"),
        "pitch_classes": report_plots.plot_pitch_class_histogram(evaluations, out / "plots" / "pitch_classes.png"),
    }
    for i, evaluation in enumerate(evaluations):
        if "bar_similarity" in evaluation.structure:
            path = out / "plots" / f"bar_similarity_{i}-{slug(evaluation.label)}.png"
            plots[f"bar_similarity:{evaluation.label}"] = report_plots.plot_bar_similarity(evaluation, path)
    shown: dict[str, list[ShownSample]] = {}
    renderers: set[str] = set()
    for i, evaluation in enumerate(evaluations):
        color = report_plots.COLORS[i % len(report_plots.COLORS)]
        shown[evaluation.label], used = export_shown_samples(
            evaluation, out, f"{i}-{slug(evaluation.label)}", samples_shown, color, audio
        )
        renderers |= used
    p_values = [compare_evaluations(evaluations[0], other) for other in evaluations[1:]]
    (out / "metrics.json").write_text(
        json.dumps(
            {
                "evaluations": [e.to_dict() for e in evaluations],
                "p_values_against_first": {
                    e.label: _json_ready(p) for e, p in zip(evaluations[1:], p_values, strict=True)
                },
            },
            indent=2,
        )
        + "\n"
    )
    page = render_page(
        evaluations,
        p_values,
        {k: v.relative_to(out).as_posix() for k, v in plots.items()},
        shown,
        renderers,
        title,
        sections,
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def run_html_section(run_dir: str | Path, out: str | Path, label: str | None = None) -> str:
    """A tuning run's targets over training (each target's figure and the KL, from its run.json) and its
    targets table: figure, 95% interval, bound, multiplier, met or missed, warnings."""
    e = html.escape
    run_dir, out = Path(run_dir), Path(out)
    record = json.loads((run_dir / "run.json").read_text())
    name = label or run_dir.name
    plot = report_plots.plot_run_trajectories(record, out / "plots" / f"run-{slug(name)}.png")
    parts = [
        f"<h2>Targets over training: {e(name)}</h2>",
        f'<img class="plot" src="{e(plot.relative_to(out).as_posix())}" '
        f'alt="targets and KL over training of {e(name)}">',
    ]
    section = record.get("targets") or {}
    if section.get("targets"):
        head = "<tr><th>target</th><th>figure</th><th>95% interval</th><th>bound</th><th>λ</th><th>met</th></tr>"
        rows = []
        for row in section["targets"]:
            interval = row.get("ci95") or [None, None]
            cells = [
                e(row["target"]),
                _number(row.get("figure")),
                f"{_number(interval[0])} – {_number(interval[1])}",
                _number(row.get("bound")),
                _number(row.get("multiplier")),
                "✓" if row["met"] else "✗ missed",
            ]
            rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        parts.append(f'<table class="targets"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>')
        parts += [f'<p class="note">⚠ {e(warning)}</p>' for warning in section.get("warnings", [])]
    return "\n".join(parts)


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _json_ready(p_values: dict[str, float]) -> dict[str, float | None]:
    return {name: (p if math.isfinite(p) else None) for name, p in p_values.items()}


# --------------------------------------------------------------------------------------------------- HTML
def render_page(
    evaluations: list[Evaluation],
    p_values: list[dict[str, float]],
    plots: dict[str, str],
    shown: dict[str, list[ShownSample]],
    renderers: set[str],
    title: str,
    sections: list[str] | tuple[str, ...] = (),
) -> str:
    """The whole page as one string (CSS inline, media by relative path)."""
    e = html.escape
    created = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">Written {created} by <code>notetune compare</code> · every number is in '
        '<a href="metrics.json">metrics.json</a>.</p>',
        "<h2>Sample sets</h2>",
        _sources_table(evaluations),
        "<h2>Metrics</h2>",
        '<p class="note">Each cell: estimate, its 95% bootstrap interval (melodies resampled; diversity: '
        "sets resampled), and for every column after the first a two-sided p-value against the first "
        "column — two-proportion z test for rates, Mann-Whitney U for per-melody figures; not corrected "
        'for multiple comparisons; <span style="color:#b00020;font-weight:600">red</span> '
        f"when p &lt; {SIGNIFICANCE}. "
        "Hover a metric for its definition.</p>",
        _table1_note(evaluations),
        _metric_table(evaluations, p_values),
        *sections,
        _structure_section(evaluations, plots),
        "<h2>Distributions</h2>",
        f'<img class="plot" src="{e(plots["distributions"])}" alt="box plots of per-melody figures">',
        "<h2>Intervals and pitch classes</h2>",
        f'<img class="plot" src="{e(plots["intervals"])}" alt="histogram of melodic intervals">',
        f'<img class="plot" src="{e(plots["pitch_classes"])}" alt="histogram of pitch classes">',
        "<h2>Samples</h2>",
        f'<p class="note">{e(_renderer_note(renderers))} Models are sampled with the same seed, so sample '
        "<i>i</i> of every column starts from the same random stream.</p>",
    ]
    parts.append(_samples_grid(evaluations, shown))
    parts += ["<h2>Definitions</h2>", _definitions(evaluations), "</body></html>"]
    return "\n".join(parts) + "\n"


def _table1_note(evaluations: list[Evaluation]) -> str:
    """Says how Table 1 was computed when a set's pieces are longer than RL Tuner's 32 steps."""
    windowed = [(ev.label, ev.settings["table1_windows"]) for ev in evaluations if ev.settings.get("table1_windows")]
    if not windowed:
        return ""
    e = html.escape
    items = "; ".join(f"{e(label)}: {e(text)}" for label, text in windowed)
    return (
        '<p class="note" id="table1-windows">Table 1 of pieces longer than 32 steps is computed on bar-aligned '
        f"windows, each scored as one composition and pooled per piece ({items}).</p>"
    )


def _structure_section(evaluations: list[Evaluation], plots: dict[str, str]) -> str:
    """Per set, the bar-level self-similarity matrix (mean over pieces) and the most common detected forms."""
    e = html.escape
    figures = []
    for evaluation in evaluations:
        image = plots.get(f"bar_similarity:{evaluation.label}")
        if image is None:
            continue
        forms = evaluation.structure.get("detected_forms", {})
        top = ", ".join(f"{e(name)} {100 * share:.1f}%" for name, share in list(forms.items())[:4])
        figures.append(
            f'<figure><img src="{e(image)}" alt="bar self-similarity of {e(evaluation.label)}">'
            f"<figcaption>{e(evaluation.label)}"
            + (f" · detected forms: {top}" if top else "")
            + "</figcaption></figure>"
        )
    if not figures:
        return ""
    return (
        "<h2>Structure</h2>"
        '<p class="note">Bar-level self-similarity: for every two bars, the share of steps on which they agree '
        "(transposition allowed, rhythm counted), averaged over the set's pieces. Bright off-diagonal cells are "
        "bars that return.</p>"
        '<div class="structure-grid">' + "".join(figures) + "</div>"
    )


def _sources_table(evaluations: list[Evaluation]) -> str:
    e = html.escape
    rows = [
        '<table class="sources"><thead><tr><th>set</th><th>kind</th><th>source</th><th>melodies</th>'
        "<th>key</th><th>settings</th></tr></thead><tbody>"
    ]
    shown = ("checkpoint", "seed", "temperature", "corpus_windows", "window_length")
    for evaluation in evaluations:
        settings = evaluation.settings
        details = ", ".join(f"{k}={settings[k]}" for k in shown if settings.get(k) is not None)
        rows.append(
            f"<tr><td>{e(evaluation.label)}</td><td>{e(str(settings.get('kind', 'samples')))}</td>"
            f"<td><code>{e(str(settings.get('source', '')))}</code></td><td>{len(evaluation.tokens):,}</td>"
            f"<td>{e(str(settings.get('key', '')))}</td><td>{e(details)}</td></tr>"
        )
    rows.append("</tbody></table>")
    prior = evaluations[0].settings.get("prior")
    corpus = evaluations[0].settings.get("corpus")
    rows.append(
        f'<p class="note">Prior: <code>{e(str(prior or "none"))}</code> · corpus for novelty: '
        f"<code>{e(str(corpus or 'none'))}</code></p>"
    )
    return "\n".join(rows)


def _metric_table(evaluations: list[Evaluation], p_values: list[dict[str, float]]) -> str:
    e = html.escape
    header = "".join(f"<th>{e(ev.label)}</th>" for ev in evaluations)
    rows = [
        f'<table class="metrics" id="metrics"><thead><tr><th>metric</th>{header}'
        "<th>paper Note RNN</th></tr></thead><tbody>"
    ]
    group = None
    for name in shown_metrics(evaluations):
        info = metric_info(name)
        if info.group != group:
            group = info.group
            title = GROUPS[group]
            if group == "diversity":
                title += f" (within sets of {evaluations[0].settings.get('diversity_set_size')} melodies)"
            rows.append(f'<tr class="group"><td colspan="{len(evaluations) + 2}">{e(title)}</td></tr>')
        cells = [f'<td title="{e(info.description)}">{e(name)}</td>']
        for column, evaluation in enumerate(evaluations):
            metric = evaluation.metrics.get(name)
            if metric is None:
                cells.append("<td>–</td>")
                continue
            interval = f'<span class="interval">{e(format_interval(metric))}</span>'
            cell = e(format_value(name, metric.value)) + interval
            if column > 0:
                p = p_values[column - 1].get(name, float("nan"))
                if math.isfinite(p):
                    significant = " significant" if p < SIGNIFICANCE else ""
                    cell += f'<span class="p{significant}">{_format_p(p)}</span>'
            cells.append(f"<td>{cell}</td>")
        paper = PAPER_TABLE1["note_rnn"].get(name)
        cells.append(f'<td class="paper">{"" if paper is None else e(format_value(name, paper))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _format_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _renderer_note(renderers: set[str]) -> str:
    if not renderers:
        return "Audio was not rendered (--no-audio)."
    if renderers == {"fluidsynth"}:
        return "Audio rendered with fluidsynth and the General MIDI soundfont pretty_midi ships (TimGM6mb.sf2)."
    return (
        "Audio rendered with pretty_midi's sine-wave synthesis, because fluidsynth is not available here "
        "(install libfluidsynth and pyfluidsynth for a piano sound)."
    )


def _samples_grid(evaluations: list[Evaluation], shown: dict[str, list[ShownSample]]) -> str:
    """One column per sample set, one row per sample index, so sample i of every set sits side by side."""
    e = html.escape
    long = any(sample.long for samples in shown.values() for sample in samples)
    width = 560 if long else 290
    cells = [f'<div class="sample-grid" style="grid-template-columns: repeat({len(evaluations)}, {width}px)">']
    cells += [f"<h3>{e(evaluation.label)}</h3>" for evaluation in evaluations]
    for row in range(max(len(samples) for samples in shown.values())):
        for evaluation in evaluations:
            samples = shown[evaluation.label]
            cells.append(_sample_figure(samples[row]) if row < len(samples) else "<div></div>")
    cells.append("</div>")
    return '<div class="scroll">' + "\n".join(cells) + "</div>"


def _sample_figure(sample: ShownSample) -> str:
    e = html.escape
    audio = f'<audio controls preload="auto" src="{e(sample.audio)}"></audio>' if sample.audio else ""
    image = f'<img src="{e(sample.piano_roll)}" alt="piano roll of sample {sample.index}"'
    image = f'<div class="roll">{image} class="long-roll"></div>' if sample.long else image + ">"
    return (
        f'<figure class="sample">{image}'
        f'{audio}<figcaption>sample {sample.index} · <a href="{e(sample.midi)}">MIDI</a> · '
        f'<a href="{e(sample.musicxml)}">MusicXML</a></figcaption></figure>'
    )


def _definitions(evaluations: list[Evaluation]) -> str:
    e = html.escape
    items = ['<dl class="definitions">']
    for name in shown_metrics(evaluations):
        info = metric_info(name)
        test = "two-proportion z test" if info.kind == "rate" else "Mann-Whitney U test"
        items.append(f"<dt>{e(name)}</dt><dd>{e(info.description)} ({test}).</dd>")
    items.append("</dl>")
    return "\n".join(items)
