"""Evaluate melodies (sampled from a model, read from files, or cut from the corpus) with 95% intervals.

One :class:`Evaluation` per sample set: Table 1 of RL Tuner, likelihood under the prior (and KL(model‖prior)
for a model), novelty against the training corpus, diversity, and MusPy-named pitch and rhythm statistics. The
numbers are computed by :mod:`notetune.rewards.metrics` and :func:`notetune.rewards.table1_statistics`; this
module adds intervals and significance tests. What is evaluated (models, files, the corpus, the prior) is loaded
by :mod:`notetune.scripts.sources`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from notetune.pretrained.encoding import canonicalize
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary
from notetune.rewards import Key, table1_statistics
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
from notetune.rewards.statistics import table1_counts

from .sources import Prior, SampleSource, load_corpus_index, score_tokens

COPY_NS = tuple(range(4, 17))
"""Phrase lengths (notes) of the corpus copy rates; ``copy_rate_8gram`` is the headline."""
PRINTED_COPY_NS = (4, 8, 12, 16)
"""Copy rates shown in printed tables and reports (the JSON holds them all)."""
COPIED_PHRASE_MIN_NOTES = 8
"""A copied phrase, for the longest span and the plagiarism flag, has at least this many notes: shorter
figures (a few long notes, a scale run) occur all over any folk corpus."""
PLAGIARISM_STEPS = 16
"""A melody is flagged when a copied phrase spans this many steps (a 4/4 bar of 16ths)."""
MAX_SET_SIZE = 100
"""Diversity is judged within sets of this many melodies (fewer when there are under ten such sets)."""

Kind = Literal["rate", "figure"]

GROUPS = {
    "table1": "Table 1 (RL Tuner's rules)",
    "likelihood": "Likelihood under the prior",
    "novelty": "Novelty against the corpus",
    "diversity": "Diversity",
    "pitch_rhythm": "Pitch and rhythm (MusPy names)",
}


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means and how it is tested."""

    group: str
    kind: Kind
    """"rate": events out of trials, tested with a two-proportion z test; "figure": a value per melody (or per
    set), tested with a Mann-Whitney U test."""
    description: str
    percent: bool = False


def _group(group: str, rows: dict[str, tuple[Kind, str]], percent: tuple[str, ...] = ()) -> dict[str, MetricInfo]:
    """Metrics of one group; rates (and the figures named in ``percent``) are shown as percentages."""
    return {
        name: MetricInfo(group, kind, description, kind == "rate" or name in percent)
        for name, (kind, description) in rows.items()
    }


METRICS: dict[str, MetricInfo] = {
    **_group(
        "table1",
        {
            "excessively_repeated": ("rate", "tokens where rule 3 fires (a note or hold repeated too often)"),
            **{
                f"autocorrelation_lag{lag}": (
                    "figure",
                    f"rule 4's autocorrelation of the tokens at lag {lag}",
                )
                for lag in (1, 2, 3)
            },
            "not_in_key": ("rate", "tokens that are notes outside the key (rule 1)"),
            "starts_with_tonic": ("rate", "compositions whose first token is the tonic"),
            "leaps_resolved": ("rate", "leaps resolved / (resolved + doubled) (rule 8)"),
            "unique_max": ("rate", "compositions whose highest token occurs once"),
            "unique_min": ("rate", "compositions whose lowest note occurs once"),
            "in_motif": ("rate", "tokens ending a bar of 8 with at least 3 distinct pitches (rule 5)"),
            "in_repeated_motif": ("rate", "tokens ending a motif heard earlier (rule 6)"),
            "repeated_onsets": ("rate", "notes re-struck more than 4 times in a row"),
            "hold_share": ("rate", "hold (NO_EVENT) tokens"),
            "rest_share": ("rate", "rest (NOTE_OFF) tokens"),
        },
    ),
    **_group(
        "likelihood",
        {
            "log_prior_per_note": ("figure", "mean log p_prior per token, nats (−3.64: uniform over 38)"),
            "kl_model_prior_per_note": (
                "figure",
                "KL(model‖prior) per token, nats: mean of log p_model − log p_prior over the model's own samples",
            ),
        },
    ),
    **_group(
        "novelty",
        {
            **{
                f"copy_rate_{n}gram": (
                    "rate",
                    f"{n}-note phrases (intervals + durations, any key) found in the corpus",
                )
                for n in COPY_NS
            },
            "longest_copied_span": (
                "figure",
                f"steps spanned by the longest copied phrase of ≥ {COPIED_PHRASE_MIN_NOTES} notes (0: none)",
            ),
            "plagiarism_rate": (
                "rate",
                f"melodies with a copied phrase of ≥ {COPIED_PHRASE_MIN_NOTES} notes spanning ≥ "
                f"{PLAGIARISM_STEPS} steps (a bar)",
            ),
        },
    ),
    **_group(
        "diversity",
        {
            "distinct_2gram": ("figure", "distinct token 2-grams / all 2-grams within a set"),
            "distinct_4gram": ("figure", "distinct token 4-grams / all 4-grams within a set"),
            "duplicate_rate": ("figure", "melodies with an identical copy in their set"),
            "mean_pairwise_similarity": (
                "figure",
                "steps at which two melodies of a set agree, averaged over pairs",
            ),
        },
        percent=("distinct_2gram", "distinct_4gram", "duplicate_rate", "mean_pairwise_similarity"),
    ),
    **_group(
        "pitch_rhythm",
        {
            "pitch_range": ("figure", "highest − lowest note, semitones"),
            "n_pitch_classes_used": ("figure", "distinct pitch classes per melody"),
            "pitch_class_entropy": ("figure", "entropy of the pitch-class histogram, bits"),
            "scale_consistency": ("figure", "largest share of notes inside one major/minor scale"),
            "rest_rate": ("rate", "steps where nothing sounds"),
            "hold_rate": ("rate", "steps that sustain a note"),
            "empty_beat_rate": ("rate", "beats (quarter notes) in which nothing sounds"),
        },
        percent=("scale_consistency",),
    ),
}
"""Every metric, in display order."""


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
        return METRICS[self.name]

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
        }


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


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
    corpus_index: NoteNgramIndex | None = None,
    paper_token_order: bool = False,
    set_size: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
) -> Evaluation:
    """All metrics of (N, T) melodies.

    ``prior_log_probs`` (N, T), log p_prior of each token, adds ``log_prior_per_note``; with
    ``model_log_probs`` (log-probabilities under the model that sampled them) also
    ``kl_model_prior_per_note``. ``corpus_index`` adds the novelty metrics. Left-out inputs leave their
    metrics out.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 8:
        raise ValueError(f"melodies must be an (n >= 1, length >= 8) token array; got shape {tokens.shape}")
    if tokens.min() < 0 or tokens.max() >= vocab.size:
        raise ValueError(f"tokens must be classes 0..{vocab.size - 1}; got {tokens.min()}..{tokens.max()}")
    key = Key.parse(key)
    count, length = tokens.shape
    steps = np.full(count, float(length))
    ones = np.ones(count)

    table1 = table1_statistics(tokens, key=key, vocab=vocab, paper_token_order=paper_token_order)
    per_melody = dict(table1_counts(tokens, key, vocab, paper_token_order))
    if prior_log_probs is not None:
        prior_log_probs = _check_log_probs(prior_log_probs, tokens, "prior_log_probs")
        per_melody["log_prior_per_note"] = (prior_log_probs.sum(axis=1), steps)
        if model_log_probs is not None:
            model_log_probs = _check_log_probs(model_log_probs, tokens, "model_log_probs")
            per_melody["kl_model_prior_per_note"] = ((model_log_probs - prior_log_probs).sum(axis=1), steps)
    if corpus_index is not None:
        copies = corpus_index.copy_statistics(tokens, COPY_NS, min_notes=COPIED_PHRASE_MIN_NOTES)
        for n in COPY_NS:
            per_melody[f"copy_rate_{n}gram"] = (
                copies.copied[n].astype(np.float64),
                copies.windows[n].astype(float),
            )
        longest = copies.longest_copied_steps.astype(np.float64)
        per_melody["longest_copied_span"] = (longest, ones)
        per_melody["plagiarism_rate"] = ((longest >= PLAGIARISM_STEPS).astype(np.float64), ones)
    per_melody.update(pitch_statistics(tokens, vocab))
    per_melody.update(rhythm_statistics(tokens, vocab))
    metrics = _with_intervals(per_melody, "melody", resamples, seed, exact=table1)

    set_size = set_size or default_set_size(count)
    if count >= set_size >= 2:
        # Sets are drawn at random: files may be ordered (corpus windows of one song sit side by side).
        shuffled = tokens[np.random.default_rng(seed).permutation(count)]
        per_set = diversity_by_set(canonicalize(shuffled), set_size)
        sets = {name: (values, np.ones_like(values)) for name, values in per_set.items()}
        metrics.update(_with_intervals(sets, f"set of {set_size} melodies", resamples, seed + 1))
    ordered = {name: metrics[name] for name in METRICS if name in metrics}
    settings = {
        "key": str(key),
        "paper_token_order": paper_token_order,
        "diversity_set_size": set_size,
        "bootstrap_resamples": resamples,
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
    )


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
    numerators = np.stack([np.asarray(ratios[n][0], dtype=np.float64) for n in names], axis=1)
    denominators = np.stack([np.asarray(ratios[n][1], dtype=np.float64) for n in names], axis=1)
    low, high = bootstrap_intervals(numerators, denominators, resamples=resamples, seed=seed)
    metrics = {}
    for i, name in enumerate(names):
        value = (exact or {}).get(name, ratio(numerators[:, i], denominators[:, i]))
        metrics[name] = Metric(
            name, float(value), float(low[i]), float(high[i]), numerators[:, i], denominators[:, i], unit
        )
    return metrics


# ------------------------------------------------------------------------------------------ significance
def two_proportion_p_value(events_a: float, trials_a: float, events_b: float, trials_b: float) -> float:
    """Two-sided p of a two-proportion z test (pooled variance); NaN without trials."""
    if trials_a <= 0 or trials_b <= 0:
        return float("nan")
    pooled = (events_a + events_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    difference = events_a / trials_a - events_b / trials_b
    if spread == 0:
        return 1.0 if difference == 0 else 0.0
    return math.erfc(abs(difference / spread) / math.sqrt(2))


def p_value(a: Metric, b: Metric) -> float:
    """Two-sided p-value for a difference between two sample sets in this metric.

    Rates: two-proportion z test on the pooled counts; figures: Mann-Whitney U test on the per-unit values.
    """
    if a.info.kind == "rate":
        return two_proportion_p_value(a.numerator.sum(), a.denominator.sum(), b.numerator.sum(), b.denominator.sum())
    from scipy.stats import mannwhitneyu

    x, y = a.per_unit(), b.per_unit()
    if x.size == 0 or y.size == 0:
        return float("nan")
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0  # every value equal: no evidence of a difference
    return float(mannwhitneyu(x, y, alternative="two-sided").pvalue)


def compare_evaluations(baseline: Evaluation, other: Evaluation) -> dict[str, float]:
    """p-values of every metric both sets have, ``other`` against ``baseline``."""
    return {
        name: p_value(baseline.metrics[name], metric)
        for name, metric in other.metrics.items()
        if name in baseline.metrics
    }


# --------------------------------------------------------------------------------------------------- sources
def evaluate_source(
    source: SampleSource,
    *,
    prior: Prior | None = None,
    corpus: str | None = "default",
    key: str | None = None,
    paper_token_order: bool = False,
    set_size: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """Evaluate a source's melodies; the key defaults to the model's own, else C major."""
    started = time.perf_counter()
    prior_log_probs = None
    if prior is not None:
        if prior.model.vocab != source.vocab:
            raise ValueError(
                f"the prior {prior.checkpoint} uses vocabulary {prior.model.vocab} but {source.label} "
                f"uses {source.vocab}; pass a matching --prior or --prior none"
            )
        eval_key = str(Key.parse(key or source.key or "C major"))
        # The prior's own samples at temperature 1 in the judged key: its log p is the sampler's (KL exactly 0).
        same_model = (
            source.checkpoint == prior.checkpoint
            and source.settings.get("temperature", 1.0) == 1.0
            and eval_key == str(Key.parse(source.key or prior.key))
        )
        prior_log_probs = source.model_log_probs if same_model else score_tokens(prior.in_key(eval_key), source.tokens)
    corpus_index, corpus_path = load_corpus_index(corpus)
    settings = {
        "source": source.path,
        "kind": source.kind,
        **source.settings,
        "prior": None if prior is None else str(prior.checkpoint),
        "corpus": corpus_path,
    }
    evaluation = evaluate_tokens(
        source.tokens,
        source.label,
        key=key or source.key or "C major",
        vocab=source.vocab,
        prior_log_probs=prior_log_probs,
        model_log_probs=source.model_log_probs if prior is not None else None,
        corpus_index=corpus_index,
        paper_token_order=paper_token_order,
        set_size=set_size,
        resamples=resamples,
        seed=seed,
        settings=settings,
    )
    evaluation.settings["scoring_seconds"] = round(time.perf_counter() - started, 3)
    return evaluation
