"""The corrected ``notetune`` set: each loophole the faithful rules leave open is closed."""

import numpy as np
import pytest
from notetune.rewards import RewardSet

C, D, E, F, G = 14, 16, 18, 19, 21
REST, HOLD = 0, 1


def rule(name, melody, length=None):
    length = length or max(8, len(melody))
    padded = list(melody) + [REST] * (length - len(melody))
    return RewardSet.from_spec(name, length=length).evaluate(np.array([padded]))[name][0][: len(melody)]


def test_notetune_weights():
    rewards = RewardSet.from_spec("notetune")
    assert rewards.weights == {
        "key": 3.0,
        "tonic_start": 12.0,
        "tonic_end": 1.0,
        "repeated_onsets": 1.0,
        "onset_autocorrelation": 1.0,
        "motif": 0.25,
        "repeated_motif_once": 1.0,
        "preferred_intervals_first_hold": 1.0,
        "leap_resolution": 6.0,
        "unique_extremes": 1.0,
    }


def test_a_long_note_is_not_a_repetition():
    whole_piece_held = [C] + [HOLD] * 31
    assert rule("excessive_repetition", whole_piece_held).sum() == -2600  # faithful: every hold from the 6th
    assert rule("repeated_onsets", whole_piece_held).sum() == 0


def test_restrikes_beyond_four_cost_100():
    assert rule("repeated_onsets", [C] * 7).tolist() == [0, 0, 0, 0, 0, -100, -100]
    # Holds between strikes still count as one run (the faithful rule would allow 8 strikes here) ...
    assert rule("repeated_onsets", [C, HOLD] * 5 + [C]).tolist() == [0] * 10 + [-100]
    assert rule("excessive_repetition", [C, HOLD] * 5 + [C]).sum() == 0
    # ... a rest or another pitch breaks it.
    assert rule("repeated_onsets", [C] * 5 + [REST] + [C] * 5).sum() == 0
    assert rule("repeated_onsets", [C] * 5 + [D] + [C] * 5).sum() == 0


def test_onset_autocorrelation_is_charged_once_at_the_end_on_pitches():
    alternating = [C, HOLD, G, HOLD] * 8  # onsets C G C G ...: rho_1 = -15/16, rho_2 = 14/16, rho_3 = -13/16
    values = rule("onset_autocorrelation", alternating)
    assert values[:31].tolist() == [0] * 31
    assert values[31] == pytest.approx(-3 * (15 + 14 + 13) / 16)


def test_onset_autocorrelation_ignores_holds_and_constant_lines():
    assert rule("onset_autocorrelation", [C] + [HOLD] * 31)[-1] == 0
    # The faithful rule correlates raw tokens, holds included, at every step.
    assert rule("autocorrelation", [C, HOLD, G, HOLD] * 8)[:31].sum() < 0


def test_a_looping_motif_is_paid_once():
    loop = [C, D, E, F, HOLD, HOLD, HOLD, HOLD] * 4
    assert rule("repeated_motif", loop).sum() == 17 * 5
    once = rule("repeated_motif_once", loop)
    assert once[15] == 5 and once.sum() == 5


def test_hold_bonus_only_on_a_notes_first_hold():
    c_then_holds = [C] + [HOLD] * 31
    assert rule("preferred_intervals", c_then_holds).sum() == pytest.approx(31 * 1.5)  # 46.5: the loophole
    first_hold = rule("preferred_intervals_first_hold", c_then_holds)
    assert first_hold[1] == 1.5 and first_hold.sum() == 1.5
    # Holds after a rest extend silence, not a note: no bonus either.
    assert rule("preferred_intervals_first_hold", [C, REST, HOLD])[2] == 0
    # Everything else is unchanged.
    melody = [C, G, REST, E, D, C, HOLD, HOLD]
    expected = rule("preferred_intervals", melody)
    expected[7] = 0
    np.testing.assert_allclose(rule("preferred_intervals_first_hold", melody), expected)


def test_tonic_splits_into_start_and_end():
    melody = [C] + [HOLD] * 27 + [C, HOLD, HOLD, REST]
    start, end = rule("tonic_start", melody), rule("tonic_end", melody)
    np.testing.assert_array_equal(start + end, rule("tonic", melody))
    assert start.sum() == 3 and end.sum() == 12


def test_notetune_total_prefers_a_varied_melody_to_a_held_tonic():
    rewards = RewardSet.from_spec("notetune")
    held = [C] + [HOLD] * 31
    varied = [
        C,
        HOLD,
        D,
        E,
        G,
        HOLD,
        E,
        D,
        C,
        HOLD,
        E,
        G,
        26,
        HOLD,
        G,
        E,
        F,
        HOLD,
        D,
        E,
        C,
        HOLD,
        D,
        11,
        C,
        HOLD,
        HOLD,
        HOLD,
        C,
        HOLD,
        HOLD,
        REST,
    ]
    terms = rewards.evaluate(np.array([held, varied]))
    totals = sum(rewards.weights[name] * values.sum(axis=1) for name, values in terms.items())
    assert totals[1] > totals[0]
