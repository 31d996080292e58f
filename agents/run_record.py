"""The run record: which evaluation is exported and why, and ``run.json`` (config, versions, hashes, figures)."""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .selection import Watcher


def chosen_evaluation(watcher: Watcher) -> dict[str, Any] | None:
    """The best evaluation within bounds, or — when nothing met every bound — the final one, marked ``fallback``
    (the final policy is then exported, described by its own evaluation)."""
    best = watcher.best
    if best is None and watcher.history:
        last = watcher.history[-1]
        best = {"step": last["step"], "stats": last["stats"], "fallback": True, "violations": last["violations"]}
    return best


def why_chosen(best: dict[str, Any] | None, watcher: Watcher, targets_text: str) -> str:
    """Why ``best`` is the exported evaluation, in words, for run.json."""
    rule = watcher.rule
    targets = ", ".join(t for t in (rule.describe_targets(), targets_text) if t)
    if best and not best.get("fallback") and best.get("missed"):
        tie = (
            f"the least KL ({best['stats']['kl_per_composition']:.2f} nats per composition)"
            if watcher.least_kl
            else f"the most music reward ({best['stats']['music_reward']:.2f} per composition)"
        )
        why = (
            f"no evaluation within bounds met every target ({targets}); this one missed the "
            f"fewest ({'; '.join(best['missed'])}), then had {tie}, among evaluations with " + rule.describe_bounds()
        )
    elif best and not best.get("fallback") and watcher.least_kl:
        why = (
            f"least KL to the prior ({best['stats']['kl_per_composition']:.2f} nats per composition) among "
            "evaluations with " + rule.describe_bounds() + f" that meet every target ({targets})"
        )
    elif best and not best.get("fallback"):
        why = (
            f"most music reward ({best['stats']['music_reward']:.2f} per composition) among evaluations with "
            + rule.describe_bounds()
            + (f" that meet every target ({targets})" if targets else "")
        )
    else:
        why = "no evaluation met every bound; exported the final policy" + (
            " (its evaluation: " + "; ".join(best["violations"]) + ")" if best else ""
        )
    return why


def write_run_record(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` atomically as strict JSON (NaN and infinities as null)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite_or_null(record), indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("notetune", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "music21"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _finite_or_null(value: Any) -> Any:
    """The record with NaN and infinities as null (figures undefined for a batch), so run.json is strict JSON."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
