"""Plain per-melody Python versions of RL Tuner's nine rules: slow, literal, and the ground truth for tests.

Each function reads like the published description (Jaques et al. 2017): ``composition`` is the list of tokens
before the action, ``t`` the action's index. The vectorised rules in
:mod:`notetune.rewards.rl_tuner` must agree with these on every melody.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NO_EVENT, NOTE_OFF, NUM_SPECIAL, Vocabulary

from .keys import Key


@dataclass
class ReferenceRules:
    """RL Tuner's rules for one melody in one key, with the leap rule's per-episode memory."""

    key: Key = Key()
    vocab: Vocabulary = DEFAULT_VOCABULARY
    length: int = 32

    def __post_init__(self) -> None:
        self.in_key = set(self.key.in_key_tokens(self.vocab).tolist())
        self.tonic = self.key.tonic_token(self.vocab)
        self.tonic_or_dominant = self.pitch_tokens(self.key.tonic_and_dominant)
        self.tonic_or_mediant = self.pitch_tokens(self.key.tonic_and_mediant)
        self.reset()

    def pitch_tokens(self, pitch_classes: frozenset[int]) -> set[int]:
        """Tokens of every pitch in the vocabulary whose pitch class is listed."""
        return {
            token
            for token in range(NUM_SPECIAL, self.vocab.size)
            if int(self.vocab.token_to_pitch(token)) % 12 in pitch_classes
        }

    def reset(self) -> None:
        self.leap_direction = 0
        self.leapt_from: int | None = None
        self.steps_since_leap = 0

    # --- rules ------------------------------------------------------------------------------------------
    def key_rule(self, composition: list[int], action: int) -> float:
        return -1.0 if action not in self.in_key else 0.0

    def tonic_rule(self, composition: list[int], action: int) -> float:
        t, final_bar = len(composition), self.length - 4
        if t in (0, final_bar):
            return 3.0 if action == self.tonic else 0.0
        if t == final_bar + 1:
            return 3.0 if action == NO_EVENT else 0.0
        if t > final_bar + 1:
            return 3.0 if action in (NO_EVENT, NOTE_OFF) else 0.0
        return 0.0

    def is_excessive_repetition(self, composition: list[int], action: int) -> bool:
        repeats, saw_hold, saw_rest = 0, False, False
        for token in reversed(composition):
            if token == action:
                repeats += 1
            elif token == NOTE_OFF:
                saw_rest = True
            elif token == NO_EVENT:
                saw_hold = True
            else:
                break
        if action == NOTE_OFF and repeats > 1:
            return True
        if not saw_hold and not saw_rest:
            return repeats > 4
        return repeats > 6

    def repetition_rule(self, composition: list[int], action: int) -> float:
        return -100.0 if self.is_excessive_repetition(composition, action) else 0.0

    @staticmethod
    def autocorrelation(signal: list[int], lag: int) -> tuple[float, bool]:
        """RL Tuner's ρ at ``lag`` (NaN for a constant signal) and whether |ρ| > 0.15, decided exactly.

        ρ = Σ(x_i − m)(x_{i+lag} − m) / n / var. Scaling by n² keeps every quantity an integer, so a tie at
        exactly 0.15 (short integer melodies hit them) never counts, unlike RL Tuner's rounded floats.
        """
        n, total = len(signal), sum(signal)
        centred = [n * x - total for x in signal]
        spread = sum(y * y for y in centred)
        if spread == 0:
            return float("nan"), False
        covariance = sum(centred[i] * centred[i + lag] for i in range(n - lag))
        return covariance / spread, 20 * abs(covariance) > 3 * spread

    def autocorrelation_rule(self, composition: list[int], action: int) -> float:
        penalty = 0.0
        for lag in (1, 2, 3):
            rho, exceeds = self.autocorrelation(composition + [action], lag)
            if exceeds:
                penalty -= 3.0 * abs(rho)
        return penalty

    @staticmethod
    def last_bar_motif(melody: list[int]) -> tuple[list[int] | None, int]:
        if len(melody) < 8:
            return None, 0
        bar = melody[-8:]
        distinct = len({token for token in bar if token not in (NO_EVENT, NOTE_OFF)})
        return (bar if distinct >= 3 else None), distinct

    def motif_rule(self, composition: list[int], action: int) -> float:
        motif, distinct = self.last_bar_motif(composition + [action])
        return 3.0 + max(0.3 * (distinct - 3), 0.0) if motif is not None else 0.0

    def is_repeated_motif(self, composition: list[int], action: int) -> bool:
        motif, _ = self.last_bar_motif(composition + [action])
        if motif is None:
            return False
        earlier = composition[:-7]
        return any(earlier[i : i + 8] == motif for i in range(len(earlier) - 7))

    def repeated_motif_rule(self, composition: list[int], action: int) -> float:
        if not self.is_repeated_motif(composition, action):
            return 0.0
        _, distinct = self.last_bar_motif(composition + [action])
        return 4.0 + max(distinct - 3, 0)

    @staticmethod
    def previous_pitch(composition: list[int]) -> int | None:
        for token in reversed(composition):
            if token not in (NO_EVENT, NOTE_OFF):
                return token
        return None

    def interval_rule(self, composition: list[int], action: int) -> float:
        previous = self.previous_pitch(composition)
        if previous is None:
            return 0.0
        stable = previous in self.tonic_or_dominant
        if action == NO_EVENT:
            return 5.0 * (0.3 if stable else 0.075)
        if action == NOTE_OFF:
            return 5.0 * (0.15 if stable else 0.05)
        interval = abs(action - previous)
        if interval == 7 and stable:
            return 5.0 * 0.1
        if interval == 4 and previous in self.tonic_or_mediant:
            return 5.0 * 0.15
        values = {4: 0.09, 2: 0.08, 5: 0.07, 9: 0.05, 7: 0.02, 11: -0.3}
        if interval > 12:
            return 5.0 * -1.0
        return 5.0 * values.get(interval, 0.0)

    def leap_outcome(self, composition: list[int], action: int) -> int:
        """+1 resolved, −1 doubled, 0 otherwise; updates the leap memory."""
        if not composition:
            return 0
        if action in (NO_EVENT, NOTE_OFF):
            self.steps_since_leap += 1
            return 0
        previous = self.previous_pitch(composition)
        interval = 0 if previous is None else abs(action - previous)
        outcome = 0
        if interval >= 7:
            direction = 1 if action > previous else -1
            if self.leap_direction != 0:
                if self.leap_direction != direction:
                    if self.steps_since_leap > 6:
                        outcome = 1
                    self.leap_direction, self.leapt_from = 0, None
                else:
                    outcome = -1
            else:
                self.leap_direction, self.leapt_from = direction, previous
            self.steps_since_leap = 0
        else:
            self.steps_since_leap += 1
            if (self.leap_direction == 1 and action <= self.leapt_from) or (
                self.leap_direction == -1 and action >= self.leapt_from
            ):
                outcome = 1
                self.leap_direction, self.leapt_from = 0, None
        return outcome

    def leap_rule(self, composition: list[int], action: int) -> float:
        return {1: 5.0, -1: -5.0, 0: 0.0}[self.leap_outcome(composition, action)]

    @staticmethod
    def unique_extremes(melody: list[int]) -> tuple[bool, bool]:
        high_unique = melody.count(max(melody)) == 1
        pitches = [token for token in melody if token not in (NO_EVENT, NOTE_OFF)]
        low_unique = bool(pitches) and melody.count(min(pitches)) == 1
        return high_unique, low_unique

    def unique_extremes_rule(self, composition: list[int], action: int) -> float:
        if len(composition) + 1 != self.length:
            return 0.0
        high, low = self.unique_extremes(composition + [action])
        return 3.0 * high + 3.0 * low

    def step_terms(self, composition: list[int], action: int) -> dict[str, float]:
        """All nine terms for one action, named as the registered rewards."""
        return {
            "key": self.key_rule(composition, action),
            "tonic": self.tonic_rule(composition, action),
            "excessive_repetition": self.repetition_rule(composition, action),
            "autocorrelation": self.autocorrelation_rule(composition, action),
            "motif": self.motif_rule(composition, action),
            "repeated_motif": self.repeated_motif_rule(composition, action),
            "preferred_intervals": self.interval_rule(composition, action),
            "leap_resolution": self.leap_rule(composition, action),
            "unique_extremes": self.unique_extremes_rule(composition, action),
        }


def reference_terms(
    melody: list[int] | np.ndarray, key: Key | str = "C major", vocab: Vocabulary = DEFAULT_VOCABULARY
) -> dict[str, list[float]]:
    """Per-step terms of one whole melody: ``{name: [term at t = 0, 1, ...]}``."""
    melody = [int(token) for token in melody]
    rules = ReferenceRules(Key.parse(key), vocab, len(melody))
    terms: dict[str, list[float]] = {}
    for t, action in enumerate(melody):
        for name, value in rules.step_terms(melody[:t], action).items():
            terms.setdefault(name, []).append(value)
    return terms
