"""The one evaluation pipeline: every figure of a set of melodies, with 95% intervals.

:func:`evaluate_tokens` is what checkpoint selection during tuning, ``evaluate``, ``compare``, sweeps and the
benchmarks all call. One :class:`Evaluation` per sample set: Table 1 of RL Tuner, likelihood under the prior (and
KL(model‖prior) for a model), the music reward of a reward set, novelty against the training corpus, diversity,
and MusPy-named pitch and rhythm statistics. Names say their unit: ``log_prior_per_token``, ``kl_per_token``,
``kl_per_composition``. Pure numpy: the log-probabilities come from the caller (``notetune.agents.evaluation``
samples and scores models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from notetune.pretrained.encoding import canonicalize
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.form import FormLayout
from notetune.pretrained.meter import DEFAULT_METER, Meter
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary
from notetune.rewards import Key, table1_statistics
from notetune.rewards.metric_table import (  # noqa: F401  (the figures' definitions, re-exported)
    COPIED_PHRASE_MIN_NOTES,
    COPY_NS,
    FORM_SHARE_PREFIX,
    GROUPS,
    MAX_SET_SIZE,
    METRICS,
    PLAGIARISM_STEPS,
    PRINTED_COPY_NS,
    REWARD_TERM_PREFIX,
    SHOWN_FORMS,
    TABLE1_LENGTH,
    TABLE1_WINDOW_BARS,
    Kind,
    MetricInfo,
    Ratio,
    metric_info,
)
from notetune.rewards.metrics import (
    NoteNgramIndex,
    bootstrap_intervals,
    diversity_by_set,
    interval_counts,
    pitch_class_counts,
    pitch_statistics,
    ratio,
    rhythm_statistics,
)
from notetune.rewards.reward_set import RewardSet
from notetune.rewards.statistics import STATISTICS, distinct_melody_share, table1_counts
from notetune.rewards.structure import (
    DEFAULT_PHRASE_BARS,
    detect_forms,
    form_compliance_counts,
    form_shares,
    phrase_similarity,
    structure_counts,
    windowed_table1_counts,
)


@dataclass
class Metric:
    """One metric of one sample set: estimate, 95% bootstrap interval, and the per-unit data behind them."""

    name: str
    value: float
    low: float
    high: float
    numerator: np.ndarray = field(repr=False)
    """Per unit (melody or set); the estimate pools ``numerator.sum() / denominator.sum()``."""
    denominator: np.ndarray = field(repr=False)
    unit: str = "melody"

    @property
    def info(self) -> MetricInfo:
        return metric_info(self.name)

    def per_unit(self) -> np.ndarray:
        """The figure of each unit where it is defined (e.g. pitch range of each melody with notes)."""
        defined = self.denominator > 0
        return self.numerator[defined] / self.denominator[defined]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "value": _json_float(self.value),
            "ci95": [_json_float(self.low), _json_float(self.high)],
            "group": self.info.group,
            "kind": self.info.kind,
            "unit": self.unit,
            "units": int(np.count_nonzero(self.denominator > 0)),
            "description": self.info.description,
        }
        if self.info.kind == "rate":
            data["events"] = _json_float(float(self.numerator.sum()))
            data["trials"] = _json_float(float(self.denominator.sum()))
        return data


@dataclass
class Evaluation:
    """Every metric of one sample set, plus the histograms the report draws."""

    label: str
    tokens: np.ndarray = field(repr=False)
    metrics: dict[str, Metric]
    table1: dict[str, float]
    """:func:`table1_statistics` verbatim (it includes ``distinct_melodies`` over the whole set)."""
    pitch_class_counts: np.ndarray
    interval_counts: np.ndarray
    """Signed intervals −12..+12 between consecutive notes (wider ones in the end bins)."""
    settings: dict[str, Any] = field(default_factory=dict)
    vocab: Vocabulary = DEFAULT_VOCABULARY
    structure: dict[str, Any] = field(default_factory=dict)
    """Long pieces: ``meter``, ``bar_similarity`` (bars × bars, the mean over pieces of the bar-level
    :func:`~notetune.rewards.structure.phrase_similarity`), ``phrase_steps`` and ``detected_forms`` (every
    form's share); empty for pieces under two bars."""

    def figures(self) -> dict[str, float]:
        """Every figure by name, one float each: Table 1 (including ``distinct_melodies``) and every metric.

        The flat view that selection, alarms, targets and ``run.json`` read."""
        figures = {name: float(value) for name, value in self.table1.items()}
        figures.update({name: metric.value for name, metric in self.metrics.items()})
        return figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "num_melodies": int(self.tokens.shape[0]),
            "length": int(self.tokens.shape[1]),
            "settings": self.settings,
            "metrics": {name: metric.to_dict() for name, metric in self.metrics.items()},
            "table1": {name: _json_float(value) for name, value in self.table1.items()},
            "pitch_class_counts": self.pitch_class_counts.astype(int).tolist(),
            "interval_counts": {str(i - 12): int(c) for i, c in enumerate(self.interval_counts)},
            "structure": _json_ready(self.structure),
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return np.round(value, 4).tolist()
    if isinstance(value, float | np.floating):
        return _json_float(float(value))
    return value


# --------------------------------------------------------------------------------------------- evaluation
def default_set_size(num_melodies: int) -> int:
    """Melodies per diversity set: up to 100, small enough for at least ten sets when possible."""
    return int(min(MAX_SET_SIZE, max(2, num_melodies // 10)))


def evaluate_tokens(
    tokens: np.ndarray,
    label: str = "samples",
    *,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    prior_log_probs: np.ndarray | None = None,
    model_log_probs: np.ndarray | None = None,
    rewards: RewardSet | None = None,
    corpus_index: NoteNgramIndex | None = None,
    paper_token_order: bool = False,
    set_size: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    meter: Meter | str = DEFAULT_METER,
    form: FormLayout | None = None,
    phrase_bars: int | None = None,
) -> Evaluation:
    """All metrics of (N, T) melodies.

    Pieces of at least two bars of ``meter`` add the structure metrics (bar repetition, distinct bars,
    cadences at the ends of phrases of ``phrase_bars`` bars — default: a quarter of the piece —, the tonic
    ending, the climax, the share of each detected form); with ``form`` (its layout) also whether each piece
    follows it. Pieces longer than :data:`TABLE1_LENGTH` steps have their Table 1 statistics computed on
    bar-aligned windows of :data:`TABLE1_WINDOW_BARS` bars (:func:`windowed_table1_counts`;
    ``settings["table1_windows"]`` says so), since RL Tuner's rules describe two-bar compositions.

    ``prior_log_probs`` (N, T), log p_prior of each token, adds ``log_prior_per_token``; with
    ``model_log_probs`` (log-probabilities under the model that sampled them) also ``kl_per_token`` and
    ``kl_per_composition``. ``rewards`` adds ``music_reward`` and each term as ``reward_<name>`` (the set is
    reset first and only read: pass a fresh set so an evaluation never changes a training set's state).
    ``corpus_index`` adds the novelty metrics. Left-out inputs leave their metrics out.

    >>> import numpy as np
    >>> evaluation = evaluate_tokens(np.tile([14, 1, 1, 1, 16, 1, 18, 1], (20, 4)), resamples=0)
    >>> round(evaluation.figures()["starts_with_tonic"], 2), round(evaluation.figures()["hold_share"], 3)
    (1.0, 0.625)
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 8:
        raise UserInputError(f"melodies must be an (n >= 1, length >= 8) token array; got shape {tokens.shape}")
    if tokens.min() < 0 or tokens.max() >= vocab.size:
        raise UserInputError(f"tokens must be classes 0..{vocab.size - 1}; got {tokens.min()}..{tokens.max()}")
    key = Key.parse(key)
    count, length = tokens.shape
    ones = np.ones(count)

    meter = Meter.parse(meter, vocab)
    table1, per_melody, table1_windows = _table1(tokens, key, vocab, meter, paper_token_order)
    if prior_log_probs is not None:
        per_melody.update(_likelihood(tokens, prior_log_probs, model_log_probs))
    if rewards is not None:
        music, terms = music_reward_per_composition(rewards, tokens, prior_log_probs)
        per_melody["music_reward"] = (music, ones)
        per_melody.update({f"{REWARD_TERM_PREFIX}{name}": (values, ones) for name, values in terms.items()})
    if corpus_index is not None:
        per_melody.update(novelty_counts(corpus_index, tokens))
    per_melody.update(pitch_statistics(tokens, vocab))
    per_melody.update(rhythm_statistics(tokens, vocab))
    structure: dict[str, Any] = {}
    if meter.bars(length) >= 2:
        structure_figures, structure = _structure(tokens, meter, key, vocab, form, phrase_bars)
        per_melody.update(structure_figures)
    metrics = _with_intervals(per_melody, "melody", resamples, seed, exact=table1)

    set_size = set_size or default_set_size(count)
    if count >= set_size >= 2:
        metrics.update(_diversity(tokens, set_size, resamples, seed))
    known = [name for name in METRICS if name in metrics]
    ordered = {name: metrics[name] for name in [*known, *(name for name in metrics if name not in METRICS)]}
    settings = {
        "key": str(key),
        "paper_token_order": paper_token_order,
        "diversity_set_size": set_size,
        "bootstrap_resamples": resamples,
        "meter": str(meter),
        **({"table1_windows": table1_windows} if table1_windows else {}),
        **({"form": form.form.text} if form is not None else {}),
        **(settings or {}),
    }
    return Evaluation(
        label,
        tokens,
        ordered,
        table1,
        pitch_class_counts(tokens, vocab).sum(axis=0),
        interval_counts(tokens),
        settings,
        vocab,
        structure,
    )


def _table1(
    tokens: np.ndarray, key: Key, vocab: Vocabulary, meter: Meter, paper_token_order: bool
) -> tuple[dict[str, float], dict[str, Ratio], str | None]:
    """Table 1 (pooled figures and per-melody counts): on the whole compositions up to :data:`TABLE1_LENGTH`
    steps, on bar-aligned windows of :data:`TABLE1_WINDOW_BARS` bars beyond (and a sentence saying so)."""
    count, length = tokens.shape
    per_melody = table1_piece_counts(tokens, key, vocab, meter, paper_token_order)
    if not _windowed(length, meter):
        return table1_statistics(tokens, key=key, vocab=vocab, paper_token_order=paper_token_order), per_melody, None
    table1 = {name: ratio(*per_melody[name]) for name in STATISTICS if name in per_melody}
    table1["distinct_melodies"] = distinct_melody_share(tokens)
    window = TABLE1_WINDOW_BARS * meter.steps_per_bar
    windows = (
        f"bar-aligned {TABLE1_WINDOW_BARS}-bar windows of {window} steps ({meter}), "
        f"{length // window} per piece; distinct_melodies over whole pieces"
    )
    return {name: float(table1[name]) for name in STATISTICS}, per_melody, windows


def _windowed(length: int, meter: Meter) -> bool:
    """Whether Table 1 of pieces of ``length`` steps is computed on bar-aligned windows."""
    return length > TABLE1_LENGTH and meter.bars(length) >= TABLE1_WINDOW_BARS


def table1_piece_counts(
    tokens: np.ndarray,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    meter: Meter | str = DEFAULT_METER,
    paper_token_order: bool = False,
) -> dict[str, Ratio]:
    """Per piece, (numerator, denominator) of each Table 1 statistic as :func:`evaluate_tokens` pools them: on
    the whole piece up to :data:`TABLE1_LENGTH` steps, on bar-aligned windows of :data:`TABLE1_WINDOW_BARS`
    bars beyond (one definition for an evaluation and for a target that shapes the reward)."""
    tokens, key, meter = np.asarray(tokens, dtype=np.int64), Key.parse(key), Meter.parse(meter, vocab)
    if not _windowed(tokens.shape[1], meter):
        return dict(table1_counts(tokens, key, vocab, paper_token_order))
    return dict(windowed_table1_counts(tokens, meter, key, vocab, TABLE1_WINDOW_BARS, paper_token_order))


def structure_piece_counts(
    tokens: np.ndarray,
    meter: Meter | str = DEFAULT_METER,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    form: FormLayout | None = None,
    phrase_bars: int | None = None,
) -> dict[str, Ratio]:
    """Per piece, (numerator, denominator) of each structure statistic as :func:`evaluate_tokens` pools them
    (``STRUCTURE_STATISTICS``; with ``form``, its layout, also whether each piece follows it). Cadences are
    judged at the ends of the form's phrases, else of ``phrase_bars`` bars (default: a quarter of the piece)."""
    tokens, key, meter = np.asarray(tokens, dtype=np.int64), Key.parse(key), Meter.parse(meter, vocab)
    bar = meter.steps_per_bar
    phrase_steps = _phrase_steps(tokens.shape[1], meter, form, phrase_bars)
    cadence_bars = phrase_steps // bar if phrase_steps % bar == 0 else (phrase_bars or DEFAULT_PHRASE_BARS)
    counts = dict(structure_counts(tokens, meter, key, vocab, cadence_bars))
    if form is not None:
        counts.update(form_compliance_counts(tokens, form, vocab))
    return counts


def _phrase_steps(length: int, meter: Meter, form: FormLayout | None, phrase_bars: int | None) -> int:
    """Steps per phrase of the structure statistics: the form's, else ``phrase_bars`` (default a quarter)."""
    if form is not None:
        return form.phrase_steps
    return (phrase_bars or max(1, meter.bars(length) // 4)) * meter.steps_per_bar


def _likelihood(tokens: np.ndarray, prior_log_probs: np.ndarray, model_log_probs: np.ndarray | None) -> dict:
    """log p_prior per token and, for a model's own samples, KL(model‖prior) per token and per composition."""
    count, length = tokens.shape
    steps, ones = np.full(count, float(length)), np.ones(count)
    prior_log_probs = _check_log_probs(prior_log_probs, tokens, "prior_log_probs")
    figures = {"log_prior_per_token": (prior_log_probs.sum(axis=1), steps)}
    if model_log_probs is not None:
        kl = (_check_log_probs(model_log_probs, tokens, "model_log_probs") - prior_log_probs).sum(axis=1)
        figures.update(kl_per_token=(kl, steps), kl_per_composition=(kl, ones))
    return figures


def distinct_4gram_share(tokens: np.ndarray, seed: int = 0) -> float:
    """The ``distinct_4gram`` figure :func:`evaluate_tokens` reports for these melodies (same sets, same seed)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    set_size = default_set_size(len(tokens))
    if not len(tokens) >= set_size >= 2:
        return float("nan")
    return _diversity(tokens, set_size, 0, seed)["distinct_4gram"].value


def _diversity(tokens: np.ndarray, set_size: int, resamples: int, seed: int) -> dict[str, Metric]:
    """Diversity within random sets of ``set_size`` melodies (drawn at random: files may be ordered, and corpus
    windows of one song sit side by side), canonical tokens."""
    shuffled = tokens[np.random.default_rng(seed).permutation(len(tokens))]
    per_set = diversity_by_set(canonicalize(shuffled), set_size)
    sets = {name: (values, np.ones_like(values)) for name, values in per_set.items()}
    return _with_intervals(sets, f"set of {set_size} melodies", resamples, seed + 1)


def _structure(
    tokens: np.ndarray,
    meter: Meter,
    key: Key,
    vocab: Vocabulary,
    form: FormLayout | None,
    phrase_bars: int | None,
) -> tuple[dict[str, Ratio], dict[str, Any]]:
    """The structure metrics' per-piece counts, and the bar-level picture of the set for the report."""
    bar = meter.steps_per_bar
    bars = meter.bars(tokens.shape[1])
    phrase_steps = _phrase_steps(tokens.shape[1], meter, form, phrase_bars)
    counts = structure_piece_counts(tokens, meter, key, vocab, form, phrase_bars)
    picture: dict[str, Any] = {
        "meter": str(meter),
        "steps_per_bar": bar,
        "bars": bars,
        "bar_similarity": phrase_similarity(tokens[:, : bars * bar], bar, vocab).mean(axis=0),
        "phrase_steps": phrase_steps,
    }
    if tokens.shape[1] // phrase_steps >= 2:
        shares = form_shares(detect_forms(tokens, phrase_steps, vocab))
        picture["detected_forms"] = {name: float(numerator.mean()) for name, (numerator, _) in shares.items()}
        for name in list(shares)[:SHOWN_FORMS]:
            counts[FORM_SHARE_PREFIX + name] = shares[name]
    if form is not None:
        picture["form"] = form.form.text
    return counts, picture


def music_reward_per_composition(
    rewards: RewardSet, tokens: np.ndarray, prior_log_probs: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Σ_t Σ weight·term of finished (N, T) compositions, and each term's unweighted sum, both (N,).

    ``prior_log_probs`` (N, T), log p_prior of each token, is passed to the terms that read it (``surprise_band``).
    """
    count, length = tokens.shape
    rewards.reset(count)
    total = np.zeros(count)
    sums: dict[str, np.ndarray] = {}
    for t in range(length):
        terms = rewards.step(tokens, t, None if prior_log_probs is None else prior_log_probs[:, t])
        total += rewards.total(terms)
        for name, values in terms.items():
            sums[name] = sums.get(name, 0.0) + values
    return total, sums


def novelty_counts(corpus_index: NoteNgramIndex, tokens: np.ndarray) -> dict[str, Ratio]:
    """Per-composition (numerator, denominator) of the corpus copy rates, the longest copied span and the
    plagiarism flag of (N, T) compositions: the one definition `evaluate` and the tuning targets use."""
    ones = np.ones(len(tokens))
    copies = corpus_index.copy_statistics(tokens, COPY_NS, min_notes=COPIED_PHRASE_MIN_NOTES)
    novelty = {
        f"copy_rate_{n}gram": (copies.copied[n].astype(np.float64), copies.windows[n].astype(float)) for n in COPY_NS
    }
    longest = copies.longest_copied_steps.astype(np.float64)
    novelty["longest_copied_span"] = (longest, ones)
    novelty["plagiarism_rate"] = ((longest >= PLAGIARISM_STEPS).astype(np.float64), ones)
    return novelty


def _check_log_probs(log_probs: np.ndarray, tokens: np.ndarray, name: str) -> np.ndarray:
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.shape != tokens.shape:
        raise ValueError(f"{name} must have the melodies' shape {tokens.shape}, got {log_probs.shape}")
    return log_probs


def _with_intervals(
    ratios: dict[str, tuple[np.ndarray, np.ndarray]],
    unit: str,
    resamples: int,
    seed: int,
    exact: dict[str, float] | None = None,
) -> dict[str, Metric]:
    names = list(ratios)
    if not names:
        return {}
    numerators = np.stack([np.asarray(ratios[n][0], dtype=np.float64) for n in names], axis=1)
    denominators = np.stack([np.asarray(ratios[n][1], dtype=np.float64) for n in names], axis=1)
    if resamples:
        low, high = bootstrap_intervals(numerators, denominators, resamples=resamples, seed=seed)
    else:  # figures only (a quick screening evaluation)
        low = high = np.full(len(names), np.nan)
    metrics = {}
    for i, name in enumerate(names):
        value = (exact or {}).get(name, ratio(numerators[:, i], denominators[:, i]))
        metrics[name] = Metric(
            name, float(value), float(low[i]), float(high[i]), numerators[:, i], denominators[:, i], unit
        )
    return metrics


def figure_names(reward_names: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Every figure name an evaluation can report (Table 1, metrics, ``reward_<name>`` of the given terms)."""
    from notetune.rewards.statistics import STATISTICS

    return list(dict.fromkeys([*STATISTICS, *METRICS, *(f"{REWARD_TERM_PREFIX}{name}" for name in reward_names)]))
