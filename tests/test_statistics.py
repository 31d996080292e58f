"""Table 1 statistics: counted as the paper did, by the same detectors the rewards use."""

import math

import numpy as np
import pytest
from notetune.rewards import PAPER_TABLE1, STATISTICS, RewardSet, format_table1, table1_statistics

REST, HOLD = 0, 1
HELD_TONIC = [14] + [HOLD] * 31
LOOP = [14, 16, 18, 19, HOLD, HOLD, HOLD, HOLD] * 4


def test_keys_and_fractions():
    stats = table1_statistics(np.array([HELD_TONIC, LOOP]))
    assert tuple(stats) == STATISTICS
    assert all(0 <= stats[name] <= 1 for name in STATISTICS if not name.startswith(("autocorrelation", "leaps")))


def test_a_held_tonic():
    stats = table1_statistics(np.array([HELD_TONIC]))
    assert stats["excessively_repeated"] == 26 / 32  # every hold from the 6th on, as RL Tuner counts
    assert stats["starts_with_tonic"] == 1 and stats["not_in_key"] == 0
    assert stats["unique_max"] == 1 and stats["unique_min"] == 1
    assert stats["hold_share"] == 31 / 32 and stats["rest_share"] == 0
    assert stats["repeated_onsets"] == 0 and stats["in_motif"] == 0
    assert math.isnan(stats["leaps_resolved"])  # no leap at all


def test_paper_token_order_reads_holds_as_rests():
    stats = table1_statistics(np.array([HELD_TONIC]), paper_token_order=True)
    assert stats["excessively_repeated"] == 29 / 32  # a third rest in a row from t = 3 on
    assert stats["hold_share"] == 31 / 32  # shares keep notetune's meaning


def test_motif_statistics_of_a_loop():
    stats = table1_statistics(np.array([LOOP]))
    assert stats["in_motif"] == 25 / 32  # the ceiling: the first 7 steps never complete a bar
    assert stats["in_repeated_motif"] == 17 / 32


def test_leaps_resolved_counts_resolved_over_resolved_plus_doubled():
    resolved = [14, 21, 19, 16, 14] + [HOLD] * 27
    doubled = [14, 21, 28] + [HOLD] * 29
    assert table1_statistics(np.array([resolved]))["leaps_resolved"] == 1
    assert table1_statistics(np.array([resolved, doubled, doubled]))["leaps_resolved"] == pytest.approx(1 / 3)


def test_autocorrelation_averages_over_compositions_that_vary():
    alternating = [14, 21] * 16
    stats = table1_statistics(np.array([alternating, [14] * 32]))
    assert stats["autocorrelation_lag1"] == pytest.approx(-31 / 32)
    assert stats["autocorrelation_lag2"] == pytest.approx(30 / 32)
    assert stats["autocorrelation_lag3"] == pytest.approx(-29 / 32)


def test_distinct_melodies_and_repeated_onsets():
    stats = table1_statistics(np.array([[14] * 32, [14] * 32, LOOP, HELD_TONIC]))
    assert stats["distinct_melodies"] == 3 / 4
    assert stats["repeated_onsets"] == 2 * 27 / (4 * 32)  # strikes 6..32 of each C-only melody


def test_statistics_agree_with_the_reward_terms():
    rng = np.random.default_rng(5)
    compositions = np.where(rng.random((300, 32)) < 0.4, 1, rng.integers(0, 38, (300, 32)))
    stats = table1_statistics(compositions)
    rl_tuner = RewardSet.from_spec("rl_tuner").evaluate(compositions)
    notetune = RewardSet.from_spec("notetune").evaluate(compositions)
    assert stats["excessively_repeated"] == np.mean(rl_tuner["excessive_repetition"] < 0)
    assert stats["not_in_key"] == np.mean(rl_tuner["key"] < 0)
    assert stats["in_repeated_motif"] == np.mean(rl_tuner["repeated_motif"] > 0)
    assert stats["in_motif"] == np.mean(rl_tuner["motif"] > 0)
    leaps = rl_tuner["leap_resolution"]
    assert stats["leaps_resolved"] == np.sum(leaps > 0) / np.sum(leaps != 0)
    assert stats["unique_max"] + stats["unique_min"] == pytest.approx(rl_tuner["unique_extremes"][:, -1].mean() / 3)
    assert stats["repeated_onsets"] == np.mean(notetune["repeated_onsets"] < 0)


def test_other_keys_change_key_and_tonic_statistics():
    d_minor = [16, 19, 23, 24] + [HOLD] * 28  # D4 F4 A4 Bb4
    assert table1_statistics(np.array([d_minor]), key="D minor")["not_in_key"] == 0
    assert table1_statistics(np.array([d_minor]), key="D minor")["starts_with_tonic"] == 1
    assert table1_statistics(np.array([d_minor]))["not_in_key"] == 1 / 32  # Bb is not in C major


def test_uniform_random_tokens_are_out_of_key_at_the_expected_rate():
    # Speed on 100k compositions is measured by `make bench` (scripts/bench_rewards.py), not asserted here.
    compositions = np.random.default_rng(0).integers(0, 38, size=(20_000, 32), dtype=np.uint8)
    stats = table1_statistics(compositions)
    assert stats["not_in_key"] == pytest.approx(15 / 38, abs=0.01)  # 15 of 38 classes are out of C major


def test_paper_columns_and_text_table():
    assert set(PAPER_TABLE1) == {"note_rnn", "q", "psi", "g"}
    assert all(set(column) <= set(STATISTICS) for column in PAPER_TABLE1.values())
    assert PAPER_TABLE1["note_rnn"]["excessively_repeated"] == 0.633 and PAPER_TABLE1["q"]["in_motif"] == 0.757
    table = format_table1({"samples": table1_statistics(np.array([HELD_TONIC]))})
    lines = table.splitlines()
    assert lines[0].split() == ["statistic", "samples", "paper", "Note", "RNN", "paper", "Q"]
    assert lines[2].split() == ["excessively_repeated", "81.2%", "63.3%", "0.0%"]
    assert "leaps_resolved" in table and "n/a" in table
    assert next(line for line in lines if line.startswith("autocorrelation_lag1")).split()[2:] == [
        "-0.160",
        "-0.110",
    ]


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match=r"compositions must be \(n >= 1, length >= 8\) tokens; got shape \(32,\)"):
        table1_statistics(np.array(HELD_TONIC))
    with pytest.raises(ValueError, match="tokens must be classes 0..37; got 0..38"):
        table1_statistics(np.array([[38] + [0] * 31]))
