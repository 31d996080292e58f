"""Sweeps of tuning runs on Ray Tune: each trial is an ordinary run directory, ``SWEEP/trials/<name>/``.

The trials are expanded and validated before Ray starts (see ``notetune.scripts.cmd_sweep``); Ray only
schedules them. A sweep directory holds ``sweep.json`` (the trial list), ``trials/`` and, once summarised,
``summary.json``, ``summary.md`` and ``pareto.png``. Re-running a sweep skips finished trials (``run.json``
exists), resumes interrupted ones from their newest checkpoint and retries failed ones.

Ray is imported only inside :func:`run_sweep` and :func:`run_trial`, so the rest works without it.
"""

from __future__ import annotations

import importlib
import json
import math
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from notetune.pretrained.errors import UserInputError

from .config import TuneConfig
from .run import CONFIG_FILE, TuneRun, load_run

SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
RUN_FILE = "run.json"
ERROR_FILE = "error.txt"
RAY_DIR = "ray"
INSTALL_HINT = "pip install -e '.[sweep]'"
HEADLINE_METRICS = (
    "music_reward",
    "log_prior_per_token",
    "kl_per_composition",
    "starts_with_tonic",
    "leaps_resolved",
    "not_in_key",
    "in_motif",
    "excessively_repeated",
    "distinct_melodies",
    "hold_share",
    "rest_share",
)
"""Final-evaluation figures every summary row carries: the trade-off, then Table 1 and collapse checks."""
PARETO_X, PARETO_Y = "log_prior_per_token", "music_reward"
FRONTIER_KL = "kl_per_composition"
"""The cost axis of the targets frontier (targets met against KL)."""
"""The Pareto plot: stay close to the prior (x, higher is closer) against music-theory reward (y)."""


class SweepError(UserInputError):
    """A sweep cannot start (bad sweep file, or a trial directory that holds a different run)."""


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: its directory name, the swept values and every other TuneConfig field."""

    name: str
    """Directory name under ``SWEEP/trials/``, made from the swept values (stable when the grid grows)."""
    params: dict[str, Any]
    """The swept values, e.g. ``{"kl_coef": 0.5, "weights.key": 2.0}``."""
    config: dict[str, Any]
    """Every TuneConfig field except ``out`` (the sweep sets it to the trial directory)."""


def trial_dir(sweep_dir: str | Path, name: str) -> Path:
    return Path(sweep_dir) / TRIALS_DIR / name


def trial_status(directory: Path) -> str:
    """finished (run.json), failed (error.txt), interrupted (a run that did not finish) or pending."""
    if (directory / RUN_FILE).is_file():
        return "finished"
    if (directory / ERROR_FILE).is_file():
        return "failed"
    if (directory / CONFIG_FILE).is_file():
        return "interrupted"
    return "pending"


def check_trial_dirs(trials: list[Trial], sweep_dir: str | Path) -> None:
    """Refuse to resume a trial whose directory holds a run with other settings (the sweep file changed)."""
    for trial in trials:
        config_path = trial_dir(sweep_dir, trial.name) / CONFIG_FILE
        if not config_path.is_file():
            continue
        stored = json.loads(config_path.read_text())
        stored.pop("out", None)
        wanted = json.loads(json.dumps(trial.config))  # tuples → lists, as config.json stores them
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        if changed:
            details = ", ".join(f"{k}: {stored.get(k)!r} → {wanted.get(k)!r}" for k in changed[:4])
            raise SweepError(
                f"trial directory {config_path.parent} holds a run with other settings ({details}); "
                "the sweep file changed since that run — choose another --out, or delete the trial "
                "directory to run it again"
            )


def write_sweep_file(trials: list[Trial], sweep_dir: str | Path, metric: str, mode: str, source: str) -> Path:
    """``SWEEP/sweep.json``: what the sweep runs, so the summary can be rebuilt from the directory alone."""
    path = Path(sweep_dir) / SWEEP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    swept = list(dict.fromkeys(name for trial in trials for name in trial.params))
    data = {
        "source": source,
        "metric": metric,
        "mode": mode,
        "swept": swept,
        "trials": [asdict(trial) for trial in trials],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def load_sweep_file(sweep_dir: str | Path) -> dict[str, Any]:
    path = Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        raise SweepError(f"{sweep_dir} is not a sweep directory ({SWEEP_FILE} not found)")
    return json.loads(path.read_text())


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


# ---------------------------------------------------------------------------------------------- Ray
def require_ray() -> None:
    """Fail with the install command when Ray (the ``sweep`` extra) is missing."""
    try:
        importlib.import_module("ray")
        importlib.import_module("ray.tune")  # `ray` alone lacks Tune's dependencies (pandas, pyarrow)
    except ImportError as error:
        raise SweepError(f"Ray is not installed; sweeps need the sweep extra: {INSTALL_HINT}") from error


def run_trial(ray_config: dict[str, Any], trials: dict[str, Trial], sweep_dir: str) -> None:
    """Ray Tune function trainable: run (or resume) one trial's TuneRun and report its final metrics."""
    from ray import tune

    trial = trials[ray_config["trial"]]
    directory = trial_dir(sweep_dir, trial.name)
    (directory / ERROR_FILE).unlink(missing_ok=True)
    try:
        if (directory / RUN_FILE).is_file():
            record = json.loads((directory / RUN_FILE).read_text())
        elif (directory / CONFIG_FILE).is_file():
            record = load_run(directory).run()
        else:
            record = TuneRun(TuneConfig(**trial.config, out=str(directory))).run()
    except Exception as error:
        # Written beside the run so the summary (and a later look at the directory) names the cause.
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ERROR_FILE).write_text(f"{type(error).__name__}: {error}\n\n{traceback.format_exc()}")
        raise
    metrics = {k: v for k, v in (record["final_metrics"] or {}).items() if _is_number(v)}
    tune.report({**metrics, "steps": record["steps"], "seconds": record["seconds"]})


def _trial_name(ray_trial: Any) -> str:
    return str(ray_trial.config["trial"])


def run_sweep(
    trials: list[Trial],
    sweep_dir: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    verbose: int = 1,
) -> dict[str, str]:
    """Run the unfinished trials on Ray Tune; returns trial name → error for trials that failed.

    Without ``address`` a local Ray instance gets ``workers`` CPUs (default 2); with it, this connects to a
    running cluster and ``workers`` caps the trials that run at once. A trial takes as many CPUs as its
    ``threads``. A Ray session that is already initialised is used as it is (and left running).
    """
    import ray
    from ray import tune

    sweep_dir = Path(sweep_dir).resolve()
    todo = [t for t in trials if trial_status(trial_dir(sweep_dir, t.name)) != "finished"]
    if not todo:
        return {}
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            try:
                ray.init(address=address)
            except (ConnectionError, RuntimeError, TimeoutError) as error:
                raise SweepError(
                    f"could not connect to the Ray cluster at {address}: {error}; start it with "
                    "`ray start --head` and check the address (ray://HOST:10001)"
                ) from error
        else:
            # "local": a private instance even if `ray start` left a cluster on this machine (Ray would join it).
            ray.init(address="local", num_cpus=workers or 2, include_dashboard=False)
    by_name = {t.name: t for t in todo}
    cpus = {t.name: max(1, int(t.config.get("threads", 1))) for t in todo}
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, trials=by_name, sweep_dir=str(sweep_dir)),
        resources=lambda ray_config: {"cpu": cpus[ray_config["trial"]]},
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.name for t in todo])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=workers if address else None,
            reuse_actors=True,  # one process per CPU for the whole sweep: torch imports once, not per trial
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=time.strftime("session-%Y%m%d-%H%M%S"),
            storage_path=str(sweep_dir / RAY_DIR),
            verbose=verbose,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    try:
        results = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    errors: dict[str, str] = {}
    for result in results:
        if result.error is None:
            continue
        name = str(result.config["trial"])
        directory = trial_dir(sweep_dir, name)
        if not (directory / ERROR_FILE).is_file():  # the worker died before it could write the cause
            directory.mkdir(parents=True, exist_ok=True)
            (directory / ERROR_FILE).write_text(f"{type(result.error).__name__}: {result.error}\n")
        errors[name] = first_line((directory / ERROR_FILE).read_text())
    return errors


# ------------------------------------------------------------------------------------------ summary
def summarize_sweep(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per trial, read from the trial directories: status, swept values, headline figures, the
    final evaluation's reward terms, Pareto optimality, and whether it is best by the sweep's metric."""
    sweep_dir = Path(sweep_dir)
    sweep = load_sweep_file(sweep_dir)
    rows = []
    for trial in sweep["trials"]:
        directory = trial_dir(sweep_dir, trial["name"])
        status = trial_status(directory)
        row: dict[str, Any] = {
            "trial": trial["name"],
            "status": status,
            "params": trial["params"],
            "directory": str(directory.resolve()),
            "metrics": {},
            "reward_terms": {},
            "steps": None,
            "seconds": None,
            "stop_reason": None,
            "error": None,
            "pareto": False,
            "best": False,
            "untuned": None,
            "targets_met": None,
            "targets_total": None,
            "frontier": False,
        }
        if status == "finished":
            record = json.loads((directory / RUN_FILE).read_text())
            numbers = {k: v for k, v in (record.get("final_metrics") or {}).items() if _is_number(v)}
            headline = {k: numbers[k] for k in HEADLINE_METRICS if k in numbers}  # first, in this order
            row["metrics"] = headline | {k: v for k, v in numbers.items() if not k.startswith("reward_")}
            row["reward_terms"] = {k.removeprefix("reward_"): v for k, v in numbers.items() if k.startswith("reward_")}
            row.update(
                steps=record["steps"],
                seconds=record["seconds"],
                stop_reason=record["stop_reason"],
                untuned=record.get("untuned"),
            )
            targets = (record.get("targets") or {}).get("targets") or []
            if targets:
                row["targets_met"] = sum(bool(target["met"]) for target in targets)
                row["targets_total"] = len(targets)
        elif status == "failed":
            row["error"] = first_line((directory / ERROR_FILE).read_text())
        rows.append(row)
    for index in pareto_front(rows):
        rows[index]["pareto"] = True
    for index in targets_frontier(rows):
        rows[index]["frontier"] = True
    best = best_trial(rows, sweep["metric"], sweep["mode"])
    if best is not None:
        rows[best]["best"] = True
    return rows


def pareto_front(rows: list[dict[str, Any]], x: str = PARETO_X, y: str = PARETO_Y) -> list[int]:
    """Indices of the rows no other row beats on both ``x`` and ``y`` (both maximised)."""
    return _non_dominated(
        [
            (i, row["metrics"][x], row["metrics"][y])
            for i, row in enumerate(rows)
            if _is_finite(row["metrics"].get(x)) and _is_finite(row["metrics"].get(y))
        ]
    )


def targets_frontier(rows: list[dict[str, Any]], kl: str = FRONTIER_KL) -> list[int]:
    """Indices of the trials with targets that no other trial beats on both targets met (more) and KL (less):
    the trade-off a sweep over target levels maps."""
    return _non_dominated(
        [
            (i, row["targets_met"], -row["metrics"][kl])
            for i, row in enumerate(rows)
            if row.get("targets_met") is not None and _is_finite(row["metrics"].get(kl))
        ]
    )


def _non_dominated(points: list[tuple[int, float, float]]) -> list[int]:
    """Indices of the (index, x, y) points that no other point beats on both x and y (both maximised)."""
    return [
        i for i, xi, yi in points if not any(xj >= xi and yj >= yi and (xj > xi or yj > yi) for _, xj, yj in points)
    ]


def best_trial(rows: list[dict[str, Any]], metric: str, mode: str) -> int | None:
    """Index of the finished row with the highest (mode 'max') or lowest ('min') final ``metric``."""
    scored = [
        (row["metrics"].get(metric, row["reward_terms"].get(metric.removeprefix("reward_"))), i)
        for i, row in enumerate(rows)
    ]
    scored = [(value, i) for value, i in scored if _is_finite(value)]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda pair: pair[0])[1]  # ties: the first trial


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)
