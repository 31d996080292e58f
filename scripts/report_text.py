"""Plain-text tables of evaluations, for the terminal (``notetune evaluate``, ``notetune compare``)."""

from __future__ import annotations

import math

from notetune.rewards import PAPER_TABLE1
from notetune.rewards.evaluation import (
    COPY_NS,
    FORM_SHARE_PREFIX,
    GROUPS,
    METRICS,
    PRINTED_COPY_NS,
    REWARD_TERM_PREFIX,
    Evaluation,
    Metric,
    metric_info,
)


def decimals(name: str, value: float) -> int:
    """Decimals that show about three significant digits of a value (of its percentage, for shares)."""
    if name.startswith("autocorrelation"):
        return 3
    size = abs(100 * value) if metric_info(name).percent else abs(value)
    if size == 0:
        return 1
    if metric_info(name).percent:
        return 1 if size >= 1 else 2 if size >= 0.1 else 3
    return 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 1 else 3


def format_value(name: str, value: float | None, places: int | None = None) -> str:
    """A metric value for people: percentages for shares, signed correlations, about 3 significant digits."""
    if value is None or not math.isfinite(value):
        return "n/a"
    places = decimals(name, value) if places is None else places
    if name.startswith("autocorrelation"):
        return f"{value:+.{places}f}"
    return f"{100 * value:.{places}f}%" if metric_info(name).percent else f"{value:.{places}f}"


def format_interval(metric: Metric) -> str:
    """``[low, high]`` of the 95% bootstrap interval, with as many decimals as the estimate."""
    places = decimals(metric.name, metric.value) if math.isfinite(metric.value) else None
    return f"[{format_value(metric.name, metric.low, places)}, {format_value(metric.name, metric.high, places)}]"


def shown_metrics(evaluations: list[Evaluation]) -> list[str]:
    """Metrics to print or report: those any evaluation has, with copy rates for a few phrase lengths only."""
    names = [name for name in METRICS if any(name in e.metrics for e in evaluations)]
    hidden = {f"copy_rate_{n}gram" for n in COPY_NS if n not in PRINTED_COPY_NS}
    terms = [n for e in evaluations for n in e.metrics if n.startswith(REWARD_TERM_PREFIX) and n not in METRICS]
    shown = []
    for name in names:
        if name not in hidden:
            shown.append(name)
        if name == "music_reward":  # each reward term's sum follows the weighted total
            shown.extend(dict.fromkeys(terms))
    forms = list(dict.fromkeys(n for e in evaluations for n in e.metrics if n.startswith(FORM_SHARE_PREFIX)))
    if forms:  # detected forms close the structure group
        structure = [i for i, name in enumerate(shown) if name in METRICS and METRICS[name].group == "structure"]
        at = structure[-1] + 1 if structure else len(shown)
        shown[at:at] = forms
    return shown


def distinct_melodies_row(evaluations: list[Evaluation], paper_column: bool) -> list[str]:
    """Table 1's ``distinct_melodies``: a figure of the whole set, so no bootstrap interval."""
    row = ["  distinct_melodies"]
    for evaluation in evaluations:
        share = evaluation.table1.get("distinct_melodies")
        row += ["–", ""] if share is None else [f"{100 * share:.2f}%", "(whole set)"]
    return row + ["", ""] if paper_column else row


def format_table(evaluations: list[Evaluation], paper_column: bool = True) -> str:
    """Per metric, each evaluation's value and 95% interval (and RL Tuner's Note RNN and Q beside Table 1)."""
    header = ["metric"]
    for evaluation in evaluations:
        header += [evaluation.label, "95% interval"]
    if paper_column:
        header += ["paper Note RNN", "paper Q"]
    rows: list[list[str]] = []
    group = None
    for name in shown_metrics(evaluations):
        if metric_info(name).group != group:
            if group == "table1":
                rows.append(distinct_melodies_row(evaluations, paper_column))
            group = metric_info(name).group
            rows.append([GROUPS[group]])
        row = [f"  {name}"]
        for evaluation in evaluations:
            metric = evaluation.metrics.get(name)
            if metric is None:
                row += ["–", ""]
            else:
                row += [format_value(name, metric.value), format_interval(metric)]
        if paper_column:
            for column in ("note_rnn", "q"):
                paper = PAPER_TABLE1[column].get(name)
                row.append("" if paper is None else format_value(name, paper))
        rows.append(row)
    widths = [max(len(row[i]) for row in [header, *rows] if len(row) > 1) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        if len(cells) == 1:
            return cells[0]
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([render(header), "  ".join("-" * w for w in widths), *map(render, rows)])
