"""Novelty rewards on constructed cases: corpus copies, count bonuses, batch duplicates, surprise band."""

import numpy as np
import pytest
from notetune.rewards import RewardError, RewardSet
from notetune.rewards.metrics import NoteNgramIndex
from notetune.rewards.novelty import BatchDiversity, SurpriseBand

REST, HOLD = 0, 1
# Eight notes of two steps each, then a held ending: a phrase of 8 onsets.
PHRASE = [14, 1, 16, 1, 18, 1, 19, 1, 21, 1, 19, 1, 18, 1, 16, 1] + [14] + [1] * 15


def run(spec, melodies, length=32, corpus=None, prior_log_probs=None):
    rewards = RewardSet.from_spec(spec, length=length, corpus=corpus)
    return rewards, rewards.evaluate(np.array(melodies), prior_log_probs)


def test_corpus_copy_penalises_a_transposed_phrase_from_the_corpus():
    corpus = [np.array(PHRASE)]
    transposed = [t + 3 if t >= 2 else t for t in PHRASE]  # same intervals and durations, up a minor third
    other_rhythm = [14, 16, 1, 1, 18, 1, 19, 1, 21, 1, 19, 1, 18, 1, 16, 1] + [14] + [1] * 15
    other_intervals = [14, 1, 16, 1, 18, 1, 19, 1, 21, 1, 19, 1, 18, 1, 17, 1] + [14] + [1] * 15
    _, terms = run("corpus_copy", [PHRASE, transposed, other_rhythm, other_intervals], corpus=corpus)
    copy = terms["corpus_copy"]
    # The 8th onset (t = 14) completes the first 8-note window, the 9th (t = 16) the second.
    assert np.flatnonzero(copy[0]).tolist() == [14, 16] and copy[0, 14] == -1
    np.testing.assert_array_equal(copy[1], copy[0])
    assert copy[2].sum() == 0 and copy[3].sum() == 0


def test_corpus_copy_index_never_spans_two_melodies():
    first, second = np.array([14, 16, 18, 19]), np.array([21, 22, 25, 26])
    assert NoteNgramIndex([first, second]).keys(4).size == 2
    assert NoteNgramIndex([first, second]).keys(5).size == 0


def test_corpus_copy_without_a_corpus_says_how_to_give_one():
    with pytest.raises(ValueError, match=r"corpus_copy needs the training melodies.*corpus=melodies"):
        RewardSet.from_spec("corpus_copy")


def test_count_novelty_decays_with_repetition_and_persists_across_episodes():
    melody = [14, 16, 18, 19] + [1] * 28
    rewards = RewardSet.from_spec("count_novelty")
    bonuses = []
    for _ in range(4):
        bonuses.append(rewards.evaluate(np.array([melody]))["count_novelty"][0, 3])
    np.testing.assert_allclose(bonuses, [1, 1 / np.sqrt(2), 1 / np.sqrt(3), 1 / 2])
    # Two copies in one batch count twice; a transposition is the same n-gram.
    batch = rewards.evaluate(np.array([[t + 2 if t >= 2 else t for t in melody], melody]))["count_novelty"]
    np.testing.assert_allclose(batch[:, 3], [1 / np.sqrt(6)] * 2)
    assert np.count_nonzero(batch) == 2


def test_batch_diversity_flags_exact_and_near_duplicates_at_the_end_only():
    rng = np.random.default_rng(0)
    base = rng.integers(2, 38, size=32)
    near = base.copy()
    near[[3, 9]] = 1  # two tokens differ
    far = rng.integers(2, 38, size=32)
    _, terms = run("batch_diversity", [base, base, near, far])
    values = terms["batch_diversity"]
    assert values[:, :31].sum() == 0
    assert values[:, 31].tolist() == [-1, -1, -1, 0]
    exact_only = BatchDiversity(max_differences=0)
    _, terms = run([exact_only], [base, base, near, far])
    assert terms["batch_diversity"][:, 31].tolist() == [-1, -1, 0, 0]


def test_surprise_band_rewards_moderate_surprisal():
    log_probs = np.full((3, 32, 38), np.log(1 / 38))  # uniform: surprisal 3.64 nats, too random
    log_probs[0, :, 14] = np.log(0.99)  # nearly certain: too predictable
    log_probs[1, :, 14] = -1.0  # surprisal 1 nat: inside [0.5, 3]
    _, terms = run("surprise_band", [[14] * 32] * 3, prior_log_probs=log_probs)
    assert terms["surprise_band"][:, 0].tolist() == [0, 1, 0]
    _, narrow = run([SurpriseBand(low=1.5, high=2.0)], [[14] * 32] * 3, prior_log_probs=log_probs)
    assert narrow["surprise_band"][:, 0].tolist() == [0, 0, 0]


def test_surprise_band_without_prior_names_itself():
    rewards = RewardSet.from_spec("surprise_band")
    rewards.reset(1)
    with pytest.raises(RewardError, match=r"reward 'surprise_band' failed at step 0: .*prior_log_probs"):
        rewards.step(np.array([[14]]), 0)
