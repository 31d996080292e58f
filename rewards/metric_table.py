"""What every evaluation figure means: its name, group, kind (rate or figure), description and unit, and the
constants the figures are defined with. :mod:`.evaluation` computes them; the report and the JSON describe them
from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

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
TABLE1_LENGTH = 32
"""Table 1 describes compositions of this many steps; longer pieces are scored on bar-aligned windows."""
TABLE1_WINDOW_BARS = 2
"""Bars per window of Table 1 on long pieces (two 4/4 bars = RL Tuner's 32 steps)."""
FORM_SHARE_PREFIX = "detected_form_"
SHOWN_FORMS = 6
"""Detected forms kept as metrics (the most common of each set; the JSON's ``structure`` holds them all)."""

Kind = Literal["rate", "figure"]
Ratio = tuple[np.ndarray, np.ndarray]

GROUPS = {
    "table1": "Table 1 (RL Tuner's rules)",
    "likelihood": "Likelihood under the prior",
    "reward": "Music reward (per composition)",
    "novelty": "Novelty against the corpus",
    "diversity": "Diversity",
    "pitch_rhythm": "Pitch and rhythm (MusPy names)",
    "structure": "Structure of long pieces (bars of the meter)",
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
            "log_prior_per_token": ("figure", "mean log p_prior per token, nats (−3.64: uniform over 38)"),
            "kl_per_token": (
                "figure",
                "KL(model‖prior) per token, nats: mean of log p_model − log p_prior over the model's own samples",
            ),
            "kl_per_composition": (
                "figure",
                "KL(model‖prior) per composition, nats: Σ_t (log p_model − log p_prior), averaged over compositions",
            ),
        },
    ),
    **_group(
        "reward",
        {"music_reward": ("figure", "Σ_t Σ weight·term per composition, with the run's reward set and weights")},
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
    **_group(
        "structure",
        {
            "bar_repeated_exact": ("rate", "bars (after the first) equal to an earlier bar of the piece"),
            "bar_repeated_transposed": (
                "rate",
                "bars (after the first) equal to an earlier bar, transposition allowed",
            ),
            "distinct_bars": ("figure", "different bars per piece"),
            "phrase_cadences": (
                "rate",
                "phrase ends whose last note lasts a quarter on degree 1, 3 or 5",
            ),
            "ends_on_tonic": ("rate", "pieces whose last note is a tonic lasting a quarter, sounding to the end"),
            "unique_climax": ("rate", "pieces with a single highest note"),
            "climax_in_second_half": ("rate", "pieces with a single highest note in their second half"),
            "returns_agree": (
                "rate",
                "pieces whose returning phrases each agree with the first phrase of their letter on ≥ 75% of steps",
            ),
            "contrasts_differ": ("rate", "pieces whose new letters each agree with earlier letters on < 75% of steps"),
            "form_followed": ("rate", "pieces that follow the form (returns agree and contrasts differ)"),
        },
    ),
}
"""Every metric, in display order (plus ``reward_<name>``: see :func:`metric_info`)."""

REWARD_TERM_PREFIX = "reward_"


def metric_info(name: str) -> MetricInfo:
    """What a metric means; ``reward_<name>`` is one reward term's unweighted sum per composition."""
    if name in METRICS:
        return METRICS[name]
    if name.startswith(REWARD_TERM_PREFIX):
        term = name[len(REWARD_TERM_PREFIX) :]
        return MetricInfo("reward", "figure", f"reward term '{term}' summed over a composition (unweighted)")
    if name.startswith(FORM_SHARE_PREFIX):
        form = name[len(FORM_SHARE_PREFIX) :]
        return MetricInfo("structure", "rate", f"pieces whose phrases are labelled {form} by similarity", True)
    raise KeyError(f"unknown metric '{name}'")
