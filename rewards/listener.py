"""A simulated listener: a Python judge scores melodies, Bradley–Terry turns two scores into a choice.

A *judge* is a batched function ``judge(tokens: (N, T) int array) -> (N,) float`` — higher is better liked.
For a pair, the listener prefers ``a`` with probability ``σ((u_a − u_b) / noise)`` and draws its answer from
that probability (a listener who is sometimes wrong, more often on close pairs), so the whole preference
loop — collect, fit a reward model, tune, judge again — can be tried without people.

:func:`contour_arch` is a judge none of the built-in rules encodes: it likes melodies whose notes rise to a
peak near the middle and fall again.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.vocab import NUM_SPECIAL

from .keys import Key
from .preferences import PreferencePair

Judge = Callable[[np.ndarray], np.ndarray]


class JudgeError(UserInputError):
    """A judge that cannot be imported or returns something other than one finite score per melody."""


def onsets(melody: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps, pitch tokens) of the notes struck in one melody."""
    steps = np.flatnonzero(melody >= NUM_SPECIAL)
    return steps, melody[steps]


def contour_arch(tokens: np.ndarray) -> np.ndarray:
    """Correlation of the struck pitches with an arch peaking at the middle of the melody, in −1..1.

    The arch is ``1 − |2 s / T − 1|`` at onset step ``s`` of ``T``; melodies with fewer than three notes,
    or a flat line, score −1 (no contour to like).
    """
    tokens = np.asarray(tokens)
    length = tokens.shape[1]
    scores = np.full(len(tokens), -1.0)
    for row, melody in enumerate(tokens):
        steps, pitches = onsets(melody)
        if len(steps) < 3 or np.ptp(pitches) == 0:
            continue
        arch = 1.0 - np.abs(2.0 * (steps + 0.5) / length - 1.0)
        if np.ptp(arch) == 0:
            continue
        scores[row] = float(np.corrcoef(pitches.astype(np.float64), arch)[0, 1])
    return scores


def load_judge(path: str) -> Judge:
    """The judge at ``package.module:function``."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise JudgeError(f"judge '{path}' must look like 'package.module:function'")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise JudgeError(f"cannot import module '{module_name}' for judge '{path}': {error}") from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise JudgeError(f"module '{module_name}' has no '{attribute}' for judge '{path}'")
        target = getattr(target, part)
    if not callable(target):
        raise JudgeError(f"judge '{path}' is not callable")
    return target  # type: ignore[return-value]


def judge_scores(judge: Judge, tokens: np.ndarray) -> np.ndarray:
    """``judge(tokens)`` checked: (N,) finite float64."""
    tokens = np.asarray(tokens, dtype=np.int64)
    try:
        scores = np.asarray(judge(tokens), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise JudgeError(f"judge {getattr(judge, '__name__', judge)!r} failed: {error}") from error
    if scores.shape != (len(tokens),) or not np.isfinite(scores).all():
        raise JudgeError(
            f"judge {getattr(judge, '__name__', judge)!r} must return one finite score per melody, "
            f"shape ({len(tokens)},); got shape {scores.shape}"
        )
    return scores


def preference_probability(scores_a: np.ndarray, scores_b: np.ndarray, noise: float) -> np.ndarray:
    """Bradley–Terry P(a preferred) = σ((u_a − u_b) / noise); noise 0 is a listener who never errs."""
    if noise < 0:
        raise ValueError(f"noise must be 0 or more, got {noise}")
    difference = np.asarray(scores_a, dtype=np.float64) - np.asarray(scores_b, dtype=np.float64)
    if noise == 0:
        return 0.5 + 0.5 * np.sign(difference)
    return 0.5 * (1.0 + np.tanh(0.5 * difference / noise))  # σ(x) without overflow


@dataclass
class SimulatedPreferences:
    """What the simulated listener answered, with the probabilities it drew from."""

    p_a: np.ndarray
    """(N,) Bradley–Terry probability that ``a`` is preferred."""
    a_wins: np.ndarray
    """(N,) bool: the drawn answers."""

    @property
    def ceiling(self) -> float:
        """Expected accuracy of the best possible predictor of these answers: mean max(p, 1 − p)."""
        return float(np.maximum(self.p_a, 1.0 - self.p_a).mean()) if len(self.p_a) else float("nan")


def simulate_preferences(
    judge: Judge, tokens_a: np.ndarray, tokens_b: np.ndarray, noise: float, rng: np.random.Generator
) -> SimulatedPreferences:
    """The simulated listener's answers for pairs ``(tokens_a[i], tokens_b[i])``."""
    tokens_a, tokens_b = np.asarray(tokens_a), np.asarray(tokens_b)
    if tokens_a.shape != tokens_b.shape or tokens_a.ndim != 2:
        raise ValueError(f"pairs need two (N, T) arrays of one shape; got {tokens_a.shape} and {tokens_b.shape}")
    p_a = preference_probability(judge_scores(judge, tokens_a), judge_scores(judge, tokens_b), noise)
    return SimulatedPreferences(p_a=p_a, a_wins=rng.random(len(p_a)) < p_a)


def simulated_pairs(
    tokens_a: np.ndarray,
    tokens_b: np.ndarray,
    answers: SimulatedPreferences,
    key: Key | str = "C major",
    listener: str = "simulated",
    source: str = "",
) -> list[PreferencePair]:
    """The answers as preference records (``p_a`` kept as an extra field)."""
    key = Key.parse(key)
    return [
        PreferencePair(
            a=np.asarray(a, dtype=np.int64),
            b=np.asarray(b, dtype=np.int64),
            winner="a" if wins else "b",
            key=key,
            listener=listener,
            source=source,
            extra={"p_a": round(float(p), 6)},
        )
        for a, b, wins, p in zip(tokens_a, tokens_b, answers.a_wins, answers.p_a, strict=True)
    ]


def judge_preference_share(judge: Judge, tokens: np.ndarray, baseline: np.ndarray) -> float:
    """Share of blind pairs (melody i against baseline melody i) the judge prefers, ties counted half."""
    scores, reference = judge_scores(judge, tokens), judge_scores(judge, baseline)
    if scores.shape != reference.shape:
        raise ValueError(f"need as many melodies as baseline melodies; got {len(scores)} and {len(reference)}")
    return float(np.mean((scores > reference) + 0.5 * (scores == reference)))
