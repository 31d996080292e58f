"""RL Tuner's nine rules on hand-worked melodies (0 rest, 1 hold, 14 = C4, 16 = D4, 18 = E4, 21 = G4)."""

import numpy as np
import pytest
from notetune.rewards import RewardSet

C, D, E, F, G, A, B = 14, 16, 18, 19, 21, 23, 25
REST, HOLD = 0, 1


def rule(name, melody, key="C major", length=None):
    """The per-step values of one reward on one melody (padded with rests to at least one bar)."""
    length = length or max(8, len(melody))
    padded = list(melody) + [REST] * (length - len(melody))
    values = RewardSet.from_spec(name, key=key, length=length).evaluate(np.array([padded]))[name][0]
    return values[: len(melody)]


def test_key_penalises_notes_outside_the_key_only():
    assert rule("key", [C, 15, REST, HOLD, 25]).tolist() == [0, -1, 0, 0, 0]
    # In D major F#4 (MIDI 66, token 20) is in key and F4 (token 19) is not.
    assert rule("key", [20, 19], key="D major").tolist() == [0, -1]


def test_tonic_pays_start_and_held_ending():
    melody = [C] + [HOLD] * 27 + [C, HOLD, REST, HOLD]
    values = rule("tonic", melody, length=32)
    assert values[0] == 3 and values[28:].tolist() == [3, 3, 3, 3] and values.sum() == 15
    # A rest on t = 29 does not count (only a hold does); the tonic elsewhere earns nothing.
    assert rule("tonic", [D, C] + [HOLD] * 26 + [C, REST, REST, REST], length=32).sum() == 9


def test_tonic_follows_the_key():
    assert rule("tonic", [A], key="A minor")[0] == 3  # A4 = token 23
    assert rule("tonic", [C], key="A minor")[0] == 0
    assert rule("tonic", [D], key="D minor")[0] == 3  # D4 = token 16


def test_repetition_six_strikes_in_a_row():
    assert rule("excessive_repetition", [C] * 6).tolist() == [0, 0, 0, 0, 0, -100]


def test_repetition_allows_more_strikes_with_holds_or_rests_between():
    with_holds = [C, HOLD] * 7 + [C]  # 8 strikes of C
    values = rule("excessive_repetition", with_holds)
    assert values.tolist() == [0] * 14 + [-100]  # the 8th strike: 7 earlier strikes > 6
    with_rests = [C, REST] * 7 + [C]
    assert rule("excessive_repetition", with_rests)[-1] == -100
    assert rule("excessive_repetition", [C, REST] * 6 + [C]).sum() == 0


def test_repetition_counts_holds_as_repeats_faithfully():
    # A note longer than six 16ths: the 6th hold has 5 holds before it.
    assert rule("excessive_repetition", [C] + [HOLD] * 7).tolist() == [0] * 6 + [-100, -100]
    # A rest after a rest in between is already too much: two earlier rests before a third.
    assert rule("excessive_repetition", [C, REST, HOLD, REST, REST]).tolist() == [0, 0, 0, 0, -100]
    # Another pitch stops the walk back.
    assert rule("excessive_repetition", [C] * 5 + [D] + [C]).sum() == 0


def test_autocorrelation_hand_computed():
    # [C, D]: rho_1 = -0.5. [C, D, C]: rho_1 = -2/3, rho_2 = 1/6 (both > 0.15).
    values = rule("autocorrelation", [C, D, C])
    np.testing.assert_allclose(values, [0, -1.5, -3 * (2 / 3 + 1 / 6)])


def test_autocorrelation_of_a_constant_melody_is_zero_not_nan():
    assert rule("autocorrelation", [C] * 8).tolist() == [0] * 8
    assert rule("autocorrelation", [HOLD] * 8).tolist() == [0] * 8


def test_autocorrelation_tie_at_exactly_015_is_not_penalised():
    # [C, G-1, E, C, C] (14, 18, 16, 14, 14): rho_2 = -0.4125 and rho_3 = -0.15 exactly (-48/320).
    values = rule("autocorrelation", [14, 18, 16, 14, 14])
    assert values[4] == pytest.approx(-3 * 0.4125)


def test_motif_needs_three_distinct_pitches_in_the_last_bar():
    assert rule("motif", [C, D, E] + [HOLD] * 5).tolist() == [0] * 7 + [3]
    assert rule("motif", [C, D, E, F, G, HOLD, REST, HOLD])[-1] == pytest.approx(3.6)
    assert rule("motif", [C, C, D, REST, HOLD, HOLD, REST, D])[-1] == 0  # holds and rests are not pitches


def test_repeated_motif_pays_when_a_bar_returns():
    motif, silence = [C, D, E, HOLD, HOLD, HOLD, HOLD, HOLD], [REST] + [HOLD] * 7
    values = rule("repeated_motif", motif + silence + motif)
    assert values[:16].sum() == 0
    assert values[23] == 4  # 3 distinct pitches: no complexity bonus


def test_repeated_motif_pays_every_step_of_a_loop_faithfully():
    loop = [C, D, E, F, HOLD, HOLD, HOLD, HOLD] * 4  # 4 distinct pitches: 4 + 1
    values = rule("repeated_motif", loop)
    assert values[:15].sum() == 0 and values[15:].tolist() == [5] * 17


def test_repeated_motif_must_not_overlap_itself():
    # The last bar overlaps its earlier occurrence: not a repeat.
    assert rule("repeated_motif", [C, D, E, C, D, E, C, D, E, C, D, E, C, D, E, C]).sum() == 0


@pytest.mark.parametrize(
    ("melody", "expected"),
    [
        ([C, HOLD], 1.5),  # hold after C: 0.3 x 5
        ([D, HOLD], 0.375),
        ([C, REST], 0.75),
        ([D, REST], 0.25),
        ([C, G], 0.5),  # fifth from C
        ([D, A], 0.1),  # other fifth
        ([C, E], 0.75),  # major third from C
        ([D, 20], 0.45),  # other major third
        ([C, D], 0.4),
        ([C, F], 0.35),
        ([C, A], 0.25),
        ([C, B], -1.5),  # major seventh
        ([C, 27], -5.0),  # more than an octave
        ([C, 26], 0.0),  # octave
        ([C, C], 0.0),
        ([C, 17], 0.0),  # minor third earns nothing in RL Tuner
        ([REST, C], 0.0),  # no previous pitch
    ],
)
def test_preferred_intervals(melody, expected):
    assert rule("preferred_intervals", melody)[1] == pytest.approx(expected)


def test_preferred_intervals_skip_holds_and_rests_and_follow_the_key():
    assert rule("preferred_intervals", [C, HOLD, REST, G])[3] == pytest.approx(0.5)
    assert rule("preferred_intervals", [D, A], key="D major")[1] == pytest.approx(0.5)  # tonic to dominant
    assert rule("preferred_intervals", [C, G], key="D major")[1] == pytest.approx(0.1)
    assert rule("preferred_intervals", [A, HOLD], key="A minor")[1] == pytest.approx(1.5)


def test_leap_resolved_by_stepping_back():
    assert rule("leap_resolution", [C, G, F, D, C]).tolist() == [0, 0, 0, 0, 5]


def test_leap_resolved_across_holds_and_rests():
    assert rule("leap_resolution", [C, G, HOLD, HOLD, F, HOLD, REST, D, HOLD, C])[-1] == 5
    # Leaping back counts only after more than 6 steps; holds and rests advance the counter.
    assert rule("leap_resolution", [C, G] + [HOLD] * 7 + [C])[-1] == 5
    assert rule("leap_resolution", [C, G] + [HOLD] * 6 + [C]).sum() == 0


def test_leap_doubled_and_the_memory_it_keeps():
    assert rule("leap_resolution", [C, G, 28]).tolist() == [0, 0, -5]
    # After a doubled leap the open leap still starts from C: going back to C resolves it.
    assert rule("leap_resolution", [C, G, 28, 26, 24, 22, 20, 18, 16, 14]).tolist() == [0, 0, -5] + [0] * 6 + [5]


def test_unique_extremes_at_the_last_step():
    melody = [C, D, E, G] + [HOLD] * 27 + [D]
    assert rule("unique_extremes", melody, length=32).tolist() == [0] * 31 + [6]
    assert rule("unique_extremes", [C, D, C, G] + [HOLD] * 28, length=32)[-1] == 3  # lowest pitch twice
    # Faithful quirk: the maximum is over all tokens, so one hold among rests is a unique maximum.
    assert rule("unique_extremes", [REST] * 31 + [HOLD], length=32)[-1] == 3


def test_rl_tuner_set_pays_twice_the_music_theory_sum():
    rewards = RewardSet.from_spec("rl_tuner")
    assert rewards.names == (
        "key",
        "tonic",
        "excessive_repetition",
        "autocorrelation",
        "motif",
        "repeated_motif",
        "preferred_intervals",
        "leap_resolution",
        "unique_extremes",
    )
    assert set(rewards.weights.values()) == {2.0}
    rewards.reset(1)
    terms = rewards.step(np.array([[C]]), 0)
    assert terms["tonic"][0] == 3 and rewards.total(terms)[0] == 6
