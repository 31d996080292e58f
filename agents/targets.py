"""Targets as constraints: ``starts_with_tonic>=0.97``, ``rest_share>=0.8x``, ``log_prior_per_token>=untuned-0.2``.

Every ratio statistic is a per-composition numerator and denominator (the Table 1 counts and their kin), so
"rate ≥ c" is the linear constraint Σ (num − c·den) ≥ 0, and its reward for one composition is
(num − c·den) / E[den] (sign flipped for ≤), paid at the composition's last step: its batch mean is the
constraint's slack in the statistic's own units (rate − c). A solver (:mod:`notetune.agents.target_solvers`)
sets each constraint term's weight — its multiplier λ ≥ 0.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from notetune.agents.selection import untuned_figure
from notetune.pretrained.encoding import canonicalize
from notetune.pretrained.piece import Piece
from notetune.rewards.core import RewardError, RewardSetup, StatefulReward, StepBatch
from notetune.rewards.evaluation import COPY_NS, novelty_counts, structure_piece_counts, table1_piece_counts
from notetune.rewards.metric_table import MAX_SET_SIZE
from notetune.rewards.metrics import NoteNgramIndex, distinct_ngram_counts, pitch_statistics, rhythm_statistics
from notetune.rewards.registry import RewardEntry
from notetune.rewards.reward_set import RewardSet
from notetune.rewards.statistics import STATISTICS, Ratio
from notetune.rewards.structure import STRUCTURE_STATISTICS

Sense = Literal[">=", "<="]
Reference = Literal["absolute", "ratio", "offset"]

TABLE1_COUNTED = tuple(name for name in STATISTICS if name != "distinct_melodies")
PITCH_RHYTHM = (
    "pitch_range",
    "n_pitch_classes_used",
    "pitch_class_entropy",
    "scale_consistency",
    "rest_rate",
    "hold_rate",
    "empty_beat_rate",
)
NOVELTY = (*(f"copy_rate_{n}gram" for n in COPY_NS), "plagiarism_rate", "longest_copied_span")
LOG_PRIOR = "log_prior_per_token"
DISTINCT_4GRAM = "distinct_4gram"
"""A figure of sets of 100 compositions that still splits into per-composition counts: each 4-gram of a
composition counts 1/m, m its occurrences in the composition's set
(:func:`~notetune.rewards.metrics.distinct_ngram_counts`)."""
FORM_COMPLIANCE = ("returns_agree", "contrasts_differ", "form_followed")
"""Structure statistics of a run with a --form (whether each piece follows it)."""
STRUCTURE = (*STRUCTURE_STATISTICS, *FORM_COMPLIANCE)
CONSTRAINABLE = (*TABLE1_COUNTED, LOG_PRIOR, *NOVELTY, *PITCH_RHYTHM, DISTINCT_4GRAM, *STRUCTURE)
"""Statistics with per-composition counts: they can be targets that shape the reward."""
SET_STATISTICS = ("distinct_melodies", "kl_per_composition", "music_reward")
"""Statistics of a whole set of compositions: targets on them can choose checkpoints but not shape rewards."""
KNOWN_STATISTICS = (*CONSTRAINABLE, *SET_STATISTICS)


class TargetError(ValueError):
    """A target that cannot be read, names no statistic, or cannot be used where it was given."""


_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|≥|≤)\s*(.*?)\s*$")
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_HOW_TO = "write STATISTIC>=VALUE or STATISTIC<=VALUE, e.g. 'starts_with_tonic>=0.97', 'rest_share>=0.8x'"


@dataclass(frozen=True)
class Target:
    """A bound on one statistic: absolute (``0.97``, ``97%``), a multiple of the untuned model's figure
    (``0.8x``), or an offset from it (``untuned-0.2``)."""

    statistic: str
    sense: Sense
    value: float
    reference: Reference = "absolute"

    @classmethod
    def parse(cls, text: str) -> Target:
        match = _TARGET.match(str(text))
        if match is None:
            hint = "; use >= or <= (bounds include their value)" if re.search(r"[<>=]", str(text)) else ""
            raise TargetError(f"cannot read target {text!r}{hint}; {_HOW_TO}")
        statistic, sense, value = match.group(1), match.group(2), match.group(3).replace(" ", "")
        sense = {"≥": ">=", "≤": "<="}.get(sense, sense)
        if value.startswith(("=", ">", "<")):
            raise TargetError(f"cannot read target {text!r}: one comparison only, >= or <=; {_HOW_TO}")
        if value == "untuned":
            return cls(statistic, sense, 1.0, "ratio")
        for pattern, reference, scale in (
            (rf"^untuned({_NUMBER})$", "offset", 1.0),
            (rf"^({_NUMBER})[x×]$", "ratio", 1.0),
            (rf"^({_NUMBER})%$", "absolute", 0.01),
            (rf"^({_NUMBER})$", "absolute", 1.0),
        ):
            found = re.match(pattern, value)
            if found:
                number = float(found.group(1)) * scale
                if not math.isfinite(number):
                    break
                return cls(statistic, sense, number, reference)  # type: ignore[arg-type]
        raise TargetError(
            f"cannot read the value {value!r} of target {text!r}; give a number (0.97 or 97%), a multiple of "
            "the untuned model's figure (0.8x) or an offset from it (untuned-0.2)"
        )

    def __str__(self) -> str:
        if self.reference == "ratio":
            value = f"{self.value:g}x"
        elif self.reference == "offset":
            value = f"untuned{self.value:+g}"
        else:
            value = f"{self.value:g}"
        return f"{self.statistic}{self.sense}{value}"

    @property
    def name(self) -> str:
        """The name of its reward term and multiplier, e.g. ``target_rest_share_min``."""
        return f"target_{self.statistic}_{'min' if self.sense == '>=' else 'max'}"

    @property
    def relative(self) -> bool:
        return self.reference != "absolute"

    def bound(self, baseline: Mapping[str, float] | None = None) -> float:
        """The figure the statistic must reach; a relative target reads the untuned model's ``baseline`` (its
        figure written in the form, where a soft-form run measured one: distinct_4gram)."""
        if not self.relative:
            return self.value
        untuned = untuned_figure(baseline or {}, self.statistic)
        if untuned is None or not math.isfinite(untuned):
            raise TargetError(
                f"target '{self}' is relative to the untuned model, but no untuned figure of "
                f"{self.statistic} was measured; measure the baseline first or give an absolute value"
            )
        return self.value * untuned if self.reference == "ratio" else untuned + self.value

    def slack(self, value: float, baseline: Mapping[str, float] | None = None) -> float:
        """How far ``value`` is inside the bound (negative: by how much it misses), in the statistic's units."""
        bound = self.bound(baseline)
        return value - bound if self.sense == ">=" else bound - value

    def met(self, value: float, baseline: Mapping[str, float] | None = None) -> bool:
        return math.isfinite(value) and self.slack(value, baseline) >= 0


def parse_targets(texts: Iterable[str] | Mapping[str, str], known: Sequence[str] = KNOWN_STATISTICS) -> list[Target]:
    """Targets from strings (``--target`` options) or a ``[targets]`` table (statistic → ">=0.97"), checked
    against ``known`` statistic names before any work."""
    if isinstance(texts, Mapping):
        texts = [f"{name}{bound}" for name, bound in texts.items()]
    targets = [Target.parse(text) for text in texts]
    check_target_names(targets, known)
    names = [target.name for target in targets]
    for name in set(names):
        if names.count(name) > 1:
            same = [str(t) for t in targets if t.name == name]
            raise TargetError(f"two targets bound the same side of one statistic: {', '.join(same)}; keep one")
    return targets


def check_target_names(targets: Iterable[Target], known: Sequence[str] = KNOWN_STATISTICS) -> None:
    """Refuse a target on a statistic not in ``known``, with a did-you-mean and the known names."""
    known = list(known)
    for target in targets:
        if target.statistic not in known:
            close = difflib.get_close_matches(target.statistic, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TargetError(
                f"unknown statistic '{target.statistic}' in target '{target}'{hint}; known: {', '.join(known)}"
            )


# ----------------------------------------------------------------------------------------- counts
def composition_counts(
    tokens: np.ndarray,
    names: Iterable[str],
    setup: RewardSetup,
    corpus_index: NoteNgramIndex | None = None,
    log_prior: np.ndarray | None = None,
) -> dict[str, Ratio]:
    """Per-composition (numerator, denominator) of each of ``names`` for (B, T) compositions, by the same
    functions `notetune evaluate` pools (Table 1 counts, on bar-aligned windows of long pieces, pitch and rhythm
    statistics, corpus copy rates, structure statistics).

    ``log_prior`` (B,) is each composition's summed log p_prior (for ``log_prior_per_token``)."""
    names = set(names)
    tokens = np.asarray(tokens, dtype=np.int64)
    count, length = tokens.shape
    counts: dict[str, Ratio] = {}
    if names & set(TABLE1_COUNTED):
        counts.update(table1_piece_counts(tokens, setup.key, setup.vocab, setup.meter))
    if names & set(PITCH_RHYTHM):
        counts.update(pitch_statistics(tokens, setup.vocab))
        counts.update(rhythm_statistics(tokens, setup.vocab))
    if names & set(NOVELTY):
        if corpus_index is None:
            raise TargetError("corpus copy-rate targets need the corpus; give the run a corpus (not --corpus none)")
        counts.update(novelty_counts(corpus_index, tokens))
    if names & set(STRUCTURE):
        check_structure_targets(names, setup)
        layout = setup.form_layout
        piece = Piece(length, setup.meter, setup.form, phrase_bars=setup.phrase_bars or None)  # as `evaluate`'s
        phrase_bars = piece.statistics_phrase_bars
        counts.update(structure_piece_counts(tokens, setup.meter, setup.key, setup.vocab, layout, phrase_bars))
    if DISTINCT_4GRAM in names:
        counts[DISTINCT_4GRAM] = distinct_ngram_counts(canonicalize(tokens), 4, MAX_SET_SIZE)
    if LOG_PRIOR in names:
        if log_prior is None:
            raise TargetError("a log_prior_per_token target needs the prior's log-probabilities of the compositions")
        counts[LOG_PRIOR] = (np.asarray(log_prior, dtype=np.float64), np.full(count, float(length)))
    return {name: counts[name] for name in names if name in counts}


def check_structure_targets(statistics: Iterable[str], setup: RewardSetup) -> None:
    """Refuse structure targets the pieces cannot have: form compliance without a form, any under two bars."""
    statistics = set(statistics)
    if statistics & set(FORM_COMPLIANCE) and setup.form is None:
        raise TargetError("targets on returns_agree, contrasts_differ or form_followed need a form: add --form AABA")
    if statistics & set(STRUCTURE) and setup.meter.bars(setup.length) < 2:
        raise TargetError(
            f"structure targets need pieces of at least 2 bars of {setup.meter}; got {setup.length} steps: "
            "give --bars 2 or more"
        )


def pooled_statistics(counts: Mapping[str, Ratio]) -> dict[str, float]:
    """Σ numerator / Σ denominator of each statistic (NaN without a denominator): its figure for the set."""
    return {name: float(np.sum(n) / np.sum(d)) if np.sum(d) else float("nan") for name, (n, d) in counts.items()}


# -------------------------------------------------------------------------------- constraint rewards
class ConstraintReward(StatefulReward):
    """(num − bound·den) / scale of one composition at its last step (negated for ≤); 0 before.

    ``scale`` is the mean denominator (e.g. the length for per-step rates), so the batch mean of the term is
    the constraint's slack in the statistic's units. Subclassed per target by :func:`constraint_entries`."""

    target: Target
    bound: float
    scale: float = 1.0
    corpus_index: NoteNgramIndex | None = None

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self._log_prior = np.zeros(batch_size)

    def step(self, batch: StepBatch) -> np.ndarray:
        if self.target.statistic == LOG_PRIOR:
            if batch.prior_log_probs is None:
                raise RewardError(f"target '{self.target}' needs the environment's prior log-probabilities")
            self._log_prior += batch.prior_log_probs[np.arange(batch.batch_size), batch.action]
        if not batch.is_last_step:
            return batch.zeros()
        counts = composition_counts(
            batch.tokens, [self.target.statistic], self.setup, self.corpus_index, self._log_prior
        )
        return constraint_value(self.target, self.bound, self.scale, *counts[self.target.statistic])


def constraint_value(
    target: Target, bound: float, scale: float, numerator: np.ndarray, denominator: np.ndarray
) -> np.ndarray:
    """Per-composition constraint feature g = ±(num − bound·den) / scale: the pooled figure meets the bound
    exactly when Σ g ≥ 0."""
    value = (numerator - bound * denominator) / scale
    return value if target.sense == ">=" else -value


def constraint_features(
    tokens: np.ndarray,
    targets: Sequence[Target],
    setup: RewardSetup,
    baseline: Mapping[str, float] | None = None,
    scales: Mapping[str, float] | None = None,
    log_prior: np.ndarray | None = None,
) -> np.ndarray:
    """(B, len(targets)) features g of finished compositions: what each constraint term pays in total."""
    index = (
        NoteNgramIndex(setup.corpus)
        if setup.corpus is not None and any(t.statistic in NOVELTY for t in targets)
        else None
    )
    counts = composition_counts(tokens, [t.statistic for t in targets], setup, index, log_prior)
    columns = [
        constraint_value(t, t.bound(baseline), float((scales or {}).get(t.statistic, 1.0)), *counts[t.statistic])
        for t in targets
    ]
    return np.stack(columns, axis=1) if columns else np.zeros((len(tokens), 0))


def constraint_entries(
    targets: Sequence[Target],
    setup: RewardSetup,
    baseline: Mapping[str, float] | None = None,
    scales: Mapping[str, float] | None = None,
) -> list[RewardEntry]:
    """One reward entry per target (named ``target.name``), with relative bounds read from ``baseline``.

    ``scales`` (statistic → mean denominator, see :func:`denominator_scales`) defaults to 1."""
    for target in targets:
        if target.statistic not in CONSTRAINABLE:
            raise TargetError(
                f"target '{target}' is on {target.statistic}, a figure of a whole set of compositions; it can "
                f"choose checkpoints but not shape the reward (reward targets: {', '.join(CONSTRAINABLE)})"
            )
    check_structure_targets([target.statistic for target in targets], setup)
    index = None
    if any(target.statistic in NOVELTY for target in targets):
        if setup.corpus is None:
            raise TargetError("corpus copy-rate targets need the corpus; give the run a corpus (not --corpus none)")
        index = NoteNgramIndex(setup.corpus)
    entries = []
    for target in targets:
        attributes = {
            "name": target.name,
            "__doc__": f"Constraint {target}: (num − bound·den) / mean den at the last step.",
            "target": target,
            "bound": target.bound(baseline),
            "scale": float((scales or {}).get(target.statistic, 1.0)),
            "corpus_index": index,
        }
        entries.append(RewardEntry(target.name, type(f"Constraint_{target.name}", (ConstraintReward,), attributes)))
    return entries


def denominator_scales(counts: Mapping[str, Ratio]) -> dict[str, float]:
    """Mean denominator per composition of each statistic (1 where it is 0), from e.g. the prior's samples."""
    return {name: float(np.mean(d)) if np.mean(d) > 0 else 1.0 for name, (_, d) in counts.items()}


def with_targets(
    rewards: RewardSet,
    targets: Sequence[Target],
    multipliers: Mapping[str, float] | None = None,
    baseline: Mapping[str, float] | None = None,
    scales: Mapping[str, float] | None = None,
) -> RewardSet:
    """A new reward set: ``rewards``' terms and weights plus one constraint term per target, weighted by its
    multiplier (0 to start). Pass the untuned model's ``baseline`` figures and ``denominator_scales`` of its
    counts, so that relative bounds resolve and every term is in its statistic's units."""
    entries = [*rewards.entries, *constraint_entries(targets, rewards.setup, baseline, scales)]
    weights = {**rewards.weights, **{t.name: float((multipliers or {}).get(t.name, 0.0)) for t in targets}}
    return RewardSet(entries, weights, rewards.setup)


def constraint_slacks(term_means: Mapping[str, float], targets: Sequence[Target]) -> dict[str, float]:
    """Each target's slack estimate from a rollout's per-composition term means (``rewards/<name>/mean``)."""
    return {target.name: float(term_means[target.name]) for target in targets}
