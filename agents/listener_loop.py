"""The preference loop without people: sample pairs from models, let a simulated listener answer, and measure
how often the judge prefers a tuned model over the untuned prior on blind pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from notetune.pretrained.checkpoint import find_checkpoint, load_checkpoint
from notetune.pretrained.sampling import sample_tokens
from notetune.pretrained.transpose import PRIOR_KEY
from notetune.rewards.listener import Judge, judge_preference_share, simulate_preferences, simulated_pairs
from notetune.rewards.preferences import PreferenceError, PreferencePair


@dataclass
class SimulateConfig:
    """Settings of `notetune reward simulate` (alias: `notetune listen simulate`)."""

    judge: str = "notetune.rewards.listener:contour_arch"
    """The simulated listener's taste: a batched function module:function, tokens (N, T) → scores (N,)."""
    pairs: int = 1000
    """Pairs to answer."""
    out: str = "out/preferences.jsonl"
    """preferences.jsonl to write (one pair a line)."""
    models: list[str] = field(default_factory=list)
    """Two models A B (melody i of A against melody i of B); one model or none ('default'): two seeds of it."""
    noise: float = 0.1
    """Bradley–Terry noise: P(a) = σ((u_a − u_b) / noise); 0 = a listener who never errs."""
    length: int = 32
    """Steps per sampled composition."""
    temperature: float = 1.0
    """Sampling temperature."""
    seed: int = 0
    """Seed of the samples (B uses seed + 1 when both come from one model) and of the drawn answers."""
    listener: str = "simulated"
    """Listener name written on every pair."""
    append: bool = False
    """Append to --out instead of refusing to overwrite an existing file."""

    def __post_init__(self) -> None:
        if self.pairs < 1 or self.length < 1:
            raise ValueError("--pairs and --length must be at least 1")
        if self.noise < 0 or self.temperature <= 0:
            raise ValueError("--noise must be 0 or more and --temperature positive")


def sample_pair_tokens(config: SimulateConfig) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(tokens A, tokens B, key, source) for the configured models."""
    models = list(config.models) or ["default"]
    if len(models) > 2:
        raise PreferenceError(f"give at most two models (A B); got {len(models)}")
    loaded = [load_checkpoint(find_checkpoint(spec)) for spec in models]
    keys = {str(cfg.get("key") or PRIOR_KEY) for _, cfg in loaded}
    if len(keys) > 1:
        raise PreferenceError(
            f"the two models write in different keys ({', '.join(sorted(keys))}); pair models of one key"
        )
    first = loaded[0][0]
    tokens_a = sample_tokens(first, config.pairs, config.length, config.temperature, seed=config.seed)
    if len(loaded) == 2:
        tokens_b = sample_tokens(loaded[1][0], config.pairs, config.length, config.temperature, seed=config.seed)
        source = f"{models[0]} vs {models[1]}"
    else:
        tokens_b = sample_tokens(first, config.pairs, config.length, config.temperature, seed=config.seed + 1)
        source = f"{models[0]} seeds {config.seed} vs {config.seed + 1}"
    return tokens_a, tokens_b, keys.pop(), source


def simulate_listening(config: SimulateConfig, judge: Judge) -> tuple[list[PreferencePair], float]:
    """The simulated answers and the listener's ceiling (expected accuracy of a perfect predictor)."""
    if config.pairs < 1:
        raise PreferenceError("--pairs must be at least 1")
    tokens_a, tokens_b, key, source = sample_pair_tokens(config)
    rng = np.random.default_rng(config.seed)
    answers = simulate_preferences(judge, tokens_a, tokens_b, config.noise, rng)
    pairs = simulated_pairs(tokens_a, tokens_b, answers, key=key, listener=config.listener, source=source)
    return pairs, answers.ceiling


def write_preferences(pairs: list[PreferencePair], path: str | Path, append: bool = False) -> Path:
    """Write (or append) the pairs as preferences.jsonl."""
    path = Path(path)
    if path.exists() and not append:
        raise FileExistsError(f"{path} exists; choose another --out or pass --append")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w") as handle:
        for pair in pairs:
            handle.write(pair.to_json() + "\n")
    return path


def judge_share_against(
    judge: Judge, model: str, baseline: str = "default", size: int = 10_000, length: int = 32, seed: int = 1234
) -> float:
    """Share of ``size`` blind pairs (a composition of ``model`` against one of ``baseline``, different
    seeds) that the judge prefers, ties counted half."""
    tuned, _ = load_checkpoint(find_checkpoint(model))
    untuned, _ = load_checkpoint(find_checkpoint(baseline))
    return judge_preference_share(
        judge, sample_tokens(tuned, size, length, seed=seed), sample_tokens(untuned, size, length, seed=seed + 1)
    )
