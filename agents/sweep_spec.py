"""The sweep file: a grid or random search over TuneConfig fields, checked whole before Ray starts.

The sweep file has a ``[base]`` table of TuneConfig fields shared by every trial, a ``[grid]`` table of
field → list of values (every combination runs), a ``[random]`` table of field → ``{low, high, log}`` or a
list to choose from (drawn ``num_samples`` times, crossed with the grid), and ``metric``/``mode``/``out``.
A reward weight is swept as ``weights.<reward>``. Every trial's config is built here; :mod:`.sweep` runs them.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.piece import piece_from_config
from notetune.pretrained.typed_config import ConfigError, from_mapping, read_toml
from notetune.rewards.evaluation import figure_names

from .config import TuneConfig, with_length_defaults
from .sweep import HEADLINE_METRICS, Trial

TOP_LEVEL_KEYS = ("base", "grid", "random", "num_samples", "sample_seed", "metric", "mode", "out")
TUNE_FIELDS = tuple(f.name for f in fields(TuneConfig))
TUNE_TYPES = typing.get_type_hints(TuneConfig)
DICT_FIELDS = tuple(name for name in TUNE_FIELDS if typing.get_origin(TUNE_TYPES[name]) is dict)
METRICS = tuple(dict.fromkeys(HEADLINE_METRICS + tuple(figure_names())))
TRIAL_DEFAULTS = {"threads": 1, "progress": False}
"""A trial differs from `notetune tune` here: one torch thread (one Ray CPU) and no progress bar."""


@dataclass(frozen=True)
class RandomRange:
    """A ``[random]`` range: uniform (or log-uniform) in [low, high]; integer fields draw integers."""

    low: float
    high: float
    log: bool = False


@dataclass
class SweepSpec:
    """A parsed, validated sweep file."""

    base: dict[str, Any] = field(default_factory=dict)
    """TuneConfig fields shared by every trial."""
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Parameter → values; every combination is a trial."""
    random: dict[str, RandomRange | list[Any]] = field(default_factory=dict)
    """Parameter → range or choices, drawn once per sample."""
    num_samples: int = 1
    """Random draws (each crossed with the whole grid)."""
    sample_seed: int = 0
    """Seed of the random draws (draw i depends on it and i only: more num_samples keeps earlier trials)."""
    metric: str = "music_reward"
    """Final-evaluation figure that ranks the trials."""
    mode: str = "max"
    """max or min."""
    out: str = "runs/sweep"
    """Sweep directory (--out overrides)."""


# ---------------------------------------------------------------------------------------- sweep file
def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep TOML file."""
    return parse_sweep_spec(read_toml(path, "sweep file"), where=str(path))


def parse_sweep_spec(data: dict[str, Any], where: str = "sweep") -> SweepSpec:
    """Validate a sweep mapping: known keys, known TuneConfig fields, well-formed values."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            hint = (
                "; TuneConfig fields go in [base], [grid] or [random]"
                if key in TUNE_FIELDS
                else _did_you_mean(key, TOP_LEVEL_KEYS)
            )
            raise ConfigError(f"{where}: unknown key '{key}'{hint}; known: {', '.join(TOP_LEVEL_KEYS)}")
    base = _table(data, "base", where)
    for name in base:
        _check_field(name, "base", where, dotted=False)
    if "out" in base:
        raise ConfigError(
            f"{where}: [base] may not set 'out' (each trial runs in SWEEP/trials/<name>); "
            'set the sweep directory with a top-level out = "..." or --out'
        )
    grid = _flatten(_table(data, "grid", where), "grid", where)
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{where}: [grid] {name} must be a non-empty list of values, e.g. {name} = [a, b]; "
                "a single value belongs in [base]"
            )
    random: dict[str, RandomRange | list[Any]] = {}
    for name, value in _flatten(_table(data, "random", where), "random", where).items():
        random[name] = _random_entry(name, value, where)
    for name in list(grid) + list(random):
        if name in grid and name in random:
            raise ConfigError(f"{where}: '{name}' is in both [grid] and [random]; sweep it in one")
        head, _, reward = name.partition(".")
        if (name in base) or (reward and reward in (base.get(head) or {})):
            raise ConfigError(f"{where}: '{name}' is in [base] and is swept; remove it from [base]")
    spec = SweepSpec(base=base, grid=grid, random=random)
    for key, kind in (
        ("num_samples", int),
        ("sample_seed", int),
        ("metric", str),
        ("mode", str),
        ("out", str),
    ):
        if key in data:
            value = data[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(
                    f"{where}: '{key}' must be a{'n integer' if kind is int else ' string'}, got {value!r}"
                )
            setattr(spec, key, value)
    if spec.num_samples < 1:
        raise ConfigError(f"{where}: num_samples must be at least 1, got {spec.num_samples}")
    if spec.num_samples > 1 and not spec.random:
        raise ConfigError(
            f"{where}: num_samples = {spec.num_samples} repeats the [random] draws, but there is no "
            "[random] table; to repeat the grid over seeds, sweep seed = [0, 1, 2] in [grid]"
        )
    if spec.mode not in ("max", "min"):
        raise ConfigError(f"{where}: mode must be 'max' or 'min', got {spec.mode!r}")
    if spec.metric not in METRICS and not spec.metric.startswith("reward_"):
        raise ConfigError(
            f"{where}: unknown metric {spec.metric!r}{_did_you_mean(spec.metric, METRICS)}; "
            f"known: {', '.join(METRICS)}, or reward_<name> for one reward term"
        )
    return spec


def expand_trials(spec: SweepSpec, where: str = "sweep") -> list[Trial]:
    """Every trial of the sweep, its TuneConfig built and type-checked (so a typo fails before Ray starts)."""
    combinations = list(itertools.product(*spec.grid.values()))
    trials: list[Trial] = []
    for sample in range(spec.num_samples):
        drawn = draw_random(spec.random, sample, spec.sample_seed)
        for combination in combinations:
            params = {**dict(zip(spec.grid, combination, strict=True)), **drawn}
            name = trial_name(params, sample if spec.random else None)
            trials.append(Trial(name, params, trial_config(spec.base, params, f"{where}: trial {name}")))
    names = [t.name for t in trials]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"{where}: several trials would share the directory {duplicates[0]!r}; "
            "a [grid] list holds the same value twice"
        )
    return trials


def draw_random(random: dict[str, RandomRange | list[Any]], sample: int, seed: int) -> dict[str, Any]:
    """Draw ``sample``'s values; floats keep 4 significant digits, so the trial name shows the exact value."""
    rng = np.random.default_rng([seed, sample])
    drawn: dict[str, Any] = {}
    for name, entry in random.items():
        if isinstance(entry, list):
            drawn[name] = entry[int(rng.integers(len(entry)))]
            continue
        integer = _field_type(name) is int
        if entry.log:
            value = math.exp(rng.uniform(math.log(entry.low), math.log(entry.high)))
        elif integer:
            value = int(rng.integers(int(entry.low), int(entry.high) + 1))
        else:
            value = rng.uniform(entry.low, entry.high)
        drawn[name] = int(round(value)) if integer else float(f"{value:.4g}")
    return drawn


def trial_config(base: dict[str, Any], params: dict[str, Any], where: str) -> dict[str, Any]:
    """The trial's TuneConfig fields (all but ``out``): trial defaults < [base] < swept values."""
    mapping: dict[str, Any] = {**TRIAL_DEFAULTS, **base}
    for name, value in params.items():
        head, _, reward = name.partition(".")
        if reward:
            mapping[head] = {**mapping.get(head, {}), reward: value}
        else:
            mapping[name] = value
    try:
        config = from_mapping(TuneConfig, mapping, where=where)
        # The length-scaled defaults are filled in now, so a trial's settings are the numbers its run saves.
        config = with_length_defaults(config, piece_from_config(config).length)
    except UserInputError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from error
    # Ray may run a trial in another working directory: pin relative prior and corpus paths now.
    for path_field in ("prior", "corpus"):
        value = getattr(config, path_field)
        if value not in ("default", "none") and Path(value).exists():
            setattr(config, path_field, str(Path(value).resolve()))
    values = asdict(config)
    values.pop("out")
    return values


def trial_name(params: dict[str, Any], sample: int | None) -> str:
    """``kl_coef=0.5,seed=1`` (``sample=3,...`` for random draws), safe as a directory name."""
    parts = ([f"sample={sample}"] if sample is not None else []) + [f"{k}={_format(v)}" for k, v in params.items()]
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "-", ",".join(parts)) or "base"
    if len(name) > 100:
        name = name[:91] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "+".join(_format(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '{key}' must be a table ([{key}]), got {value!r}")
    return value


def _flatten(table: dict[str, Any], section: str, where: str) -> dict[str, Any]:
    """Parameters of [grid]/[random]: ``[grid.weights] key = [...]`` and ``"weights.key" = [...]`` both
    become ``weights.key``."""
    params: dict[str, Any] = {}
    for name, value in table.items():
        if name in DICT_FIELDS and isinstance(value, dict):
            params.update({f"{name}.{reward}": v for reward, v in value.items()})
        else:
            params[name] = value
    for name in params:
        _check_field(name, section, where, dotted=True)
    return params


def _check_field(name: str, section: str, where: str, dotted: bool) -> None:
    head, _, rest = name.partition(".")
    if head not in TUNE_FIELDS:
        raise ConfigError(
            f"{where}: [{section}] unknown TuneConfig field '{head}'{_did_you_mean(head, TUNE_FIELDS)}"
            f"; known fields: {', '.join(TUNE_FIELDS)}"
        )
    if rest and (not dotted or head not in DICT_FIELDS or "." in rest):
        raise ConfigError(
            f"{where}: [{section}] '{name}': only "
            + ", ".join(f"{d}.<{'reward' if d == 'weights' else 'statistic'}>" for d in DICT_FIELDS)
            + " take a dotted name"
        )


def _random_entry(name: str, value: Any, where: str) -> RandomRange | list[Any]:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: [random] {name} is an empty list of choices")
        return value
    example = f"{name} = {{ low = 0.1, high = 10.0, log = true }} or {name} = [choice, ...]"
    if not isinstance(value, dict) or not {"low", "high"} <= set(value) or set(value) - {"low", "high", "log"}:
        raise ConfigError(f"{where}: [random] {name} must be a range or a list of choices: {example}; got {value!r}")
    if _field_type(name) not in (int, float):
        raise ConfigError(f"{where}: [random] {name} is not a number; give a list of choices instead of a range")
    low, high, log = value["low"], value["high"], value.get("log", False)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise ConfigError(f"{where}: [random] {name} needs numbers low < high, got low={low!r}, high={high!r}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise ConfigError(f"{where}: [random] {name}: log must be true or false, and a log range needs low > 0")
    return RandomRange(float(low), float(high), log)


def _field_type(name: str) -> Any:
    head, _, reward = name.partition(".")
    annotation = TUNE_TYPES[head]
    return typing.get_args(annotation)[1] if reward else annotation


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), 1)
    return f"; did you mean '{match[0]}'?" if match else ""
