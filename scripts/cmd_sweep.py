"""``notetune sweep --config sweep.toml``: a grid or random search over TuneConfig fields on Ray Tune.

The sweep file has a ``[base]`` table of TuneConfig fields shared by every trial, a ``[grid]`` table of
field → list of values (every combination runs), a ``[random]`` table of field → ``{low, high, log}`` or a
list to choose from (drawn ``num_samples`` times, crossed with the grid), and ``metric``/``mode``/``out``.
A reward weight is swept as ``weights.<reward>``. The file is read and every trial's config built by
:mod:`notetune.agents.sweep_spec` before Ray starts; see ``scripts/sweep_example.toml``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from notetune.agents.sweep import check_trial_dirs, require_ray, run_sweep, trial_dir, trial_status, write_sweep_file
from notetune.agents.sweep_spec import expand_trials, load_sweep_spec

from .config import ConfigError
from .sweep_report import format_text_table, write_sweep_summary


def register(parser: argparse.ArgumentParser):
    parser.add_argument(
        "--config",
        required=True,
        metavar="SWEEP_TOML",
        help="sweep file: [base], [grid], [random], num_samples, metric, mode, out",
    )
    parser.add_argument(
        "--address",
        metavar="ray://HOST:PORT",
        help="run on an existing Ray cluster (default: a local Ray on this machine)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local: CPUs given to Ray, one per trial (default 2); cluster: most trials at once",
    )
    parser.add_argument("--out", metavar="DIR", help="sweep directory (default: the sweep file's out, runs/sweep)")
    return run


def run(args: argparse.Namespace) -> int:
    spec = load_sweep_spec(args.config)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    out = Path(args.out or spec.out)
    trials = expand_trials(spec, where=args.config)
    check_trial_dirs(trials, out)
    require_ray()

    write_sweep_file(trials, out, spec.metric, spec.mode, source=str(Path(args.config).resolve()))
    counts = {status: 0 for status in ("finished", "failed", "interrupted", "pending")}
    for trial in trials:
        counts[trial_status(trial_dir(out, trial.name))] += 1
    where = args.address or f"a local Ray with {args.workers or 2} CPUs"
    print(
        f"sweep {out}: {len(trials)} trials on {where}; {counts['finished']} finished earlier (kept), "
        f"{counts['interrupted']} to resume, {counts['failed']} to retry, {counts['pending']} new"
    )
    started = time.monotonic()
    run_sweep(trials, out, address=args.address, workers=args.workers)
    rows, paths = write_sweep_summary(out)
    print(format_text_table(rows))
    failed = [row for row in rows if row["status"] != "finished"]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} trials finished in {time.monotonic() - started:.0f} s; "
        f"summary: {paths['markdown']}, {paths['json']}; Pareto plot: {paths['pareto']}"
    )
    if failed:
        print(
            f"{len(failed)} trial(s) did not finish (see the error column); run the same command again to "
            "retry or resume them"
        )
    return 1 if failed else 0
