"""Issue 12, section 7, reward side: batch_diversity compares across batch sizes, distinct_melodies counts
sounding melodies, and corpus_copy agrees with the copy-rate metric."""

import numpy as np
import pytest
from notetune.pretrained.corpus import load_corpus
from notetune.pretrained.vocab import HOLD, REST, canonicalize
from notetune.rewards import RewardSet, table1_statistics
from notetune.rewards.evaluation import evaluate_tokens, music_reward_per_composition
from notetune.rewards.metrics import NoteNgramIndex
from notetune.rewards.novelty import BatchDiversity


def iid_melodies(count: int, seed: int, modes: int = 2000) -> np.ndarray:
    """``count`` i.i.d. melodies: one of ``modes`` fixed tunes, one token changed at random (a near twin of any
    other draw of the same tune)."""
    tunes = np.random.default_rng(12).integers(2, 38, size=(modes, 32))
    rng = np.random.default_rng(seed)
    melodies = tunes[rng.integers(0, modes, size=count)].copy()
    melodies[np.arange(count), rng.integers(0, 32, size=count)] = rng.integers(2, 38, size=count)
    return melodies


def batch_diversity_per_melody(melodies: np.ndarray) -> float:
    total, _ = music_reward_per_composition(RewardSet.from_spec("batch_diversity"), melodies)
    return float(total.mean())


def test_batch_diversity_expects_the_same_penalty_per_melody_at_2048_and_10000():
    screening = batch_diversity_per_melody(iid_melodies(2048, seed=1))
    confirmation = batch_diversity_per_melody(iid_melodies(10_000, seed=2))
    # Within groups of about 256, P(a near twin) = 1 − (1 − 1/2000)^255 ≈ 0.12 whatever the batch size.
    assert -0.16 < screening < -0.08 and -0.16 < confirmation < -0.08
    assert confirmation == pytest.approx(screening, abs=0.03)


def test_batch_diversity_keeps_every_melody_and_judges_within_groups():
    reward = BatchDiversity(group_size=4)
    base = np.full(32, 14)
    other = np.arange(32) % 30 + 2
    batch = np.stack([base, other, other + 1, other + 2, base, other + 3, other + 4])  # groups of 4 and 3
    assert reward.near_duplicates(batch).tolist() == [False] * 7  # the two copies of base are in two groups
    batch[3] = base
    assert reward.near_duplicates(batch).tolist() == [True, False, False, True, False, False, False]
    # a batch of one group is judged as a whole, as before
    assert BatchDiversity().near_duplicates(batch).tolist() == [True, False, False, True, True, False, False]


def test_two_spellings_of_the_same_sound_are_one_distinct_melody():
    melody = np.array([14, HOLD, REST, HOLD, 16, HOLD, HOLD, HOLD] * 4)
    respelled = melody.copy()
    respelled[3] = REST  # a rest during silence sounds like a hold
    assert not np.array_equal(melody, respelled)
    assert np.array_equal(canonicalize(melody), canonicalize(respelled))
    assert table1_statistics(np.stack([melody, respelled]))["distinct_melodies"] == 0.5
    assert evaluate_tokens(np.stack([melody, respelled]), resamples=0).figures()["distinct_melodies"] == 0.5
    different = melody.copy()
    different[4] = 18
    assert table1_statistics(np.stack([melody, different]))["distinct_melodies"] == 1.0


def test_corpus_copy_reward_and_copy_rate_metric_agree(tiny_corpus_path):
    corpus = load_corpus(tiny_corpus_path)
    windows = corpus.windows(32)
    rng = np.random.default_rng(3)
    mutated = windows.copy()
    changed = (mutated >= 2) & (rng.random(mutated.shape) < 0.1)
    mutated[changed] = rng.integers(2, 38, size=int(changed.sum()))  # about one note in ten replaced
    melodies = np.concatenate([windows, mutated])
    rewards = RewardSet.from_spec("corpus_copy", length=32, corpus=corpus.melodies())
    _, terms = music_reward_per_composition(rewards, melodies)
    index = NoteNgramIndex.from_flat(corpus.tokens, corpus.offsets)
    copies = index.copy_statistics(melodies, (8,), min_notes=8)
    # One −1 per 8-note phrase found in the corpus, melody by melody.
    np.testing.assert_array_equal(-terms["corpus_copy"], copies.copied[8])
    assert 0 < copies.copied[8].sum() < copies.windows[8].sum()
