"""The vectorised rules agree with the plain per-melody reference (rewards/reference.py) on every step."""

from importlib.resources import files

import numpy as np
import pytest
from notetune.rewards import RewardSet
from notetune.rewards.reference import reference_terms

CORPUS_FILE = files("notetune.pretrained") / "data" / "corpus.npz"


def assert_matches_reference(melodies: np.ndarray, key: str = "C major") -> None:
    vectorised = RewardSet.from_spec("rl_tuner", key=key, length=melodies.shape[1]).evaluate(melodies)
    for index, melody in enumerate(melodies):
        for name, expected in reference_terms(melody, key).items():
            if not np.allclose(vectorised[name][index], expected, rtol=0, atol=1e-9):
                step = int(np.flatnonzero(~np.isclose(vectorised[name][index], expected, rtol=0, atol=1e-9))[0])
                pytest.fail(
                    f"{name} differs on melody {melody.tolist()} at t = {step}: "
                    f"vectorised {vectorised[name][index][step]}, reference {expected[step]}"
                )


def corpus_like(count: int, rng: np.random.Generator) -> np.ndarray:
    """Melodies shaped like the corpus: mostly holds and scale steps in C major, some rests, some leaps."""
    tokens = np.empty((count, 32), dtype=np.int64)
    pitch = rng.choice([9, 14, 16, 18, 21, 23], size=count)
    scale = np.array([2, 4, 6, 7, 9, 11, 13, 14, 16, 18, 19, 21, 23, 25, 26, 28, 30, 31, 33, 35, 37])
    for t in range(32):
        roll = rng.random(count)
        position = np.searchsorted(scale, pitch).clip(0, scale.size - 1)
        position = (position + rng.choice([-4, -2, -1, -1, 0, 1, 1, 2, 4], size=count)).clip(0, scale.size - 1)
        pitch = np.where(roll < 0.6, scale[position], pitch)
        tokens[:, t] = np.where(roll < 0.6, pitch, np.where(roll < 0.93, 1, 0))
    return tokens


def test_uniformly_random_melodies():
    rng = np.random.default_rng(2024)
    assert_matches_reference(rng.integers(0, 38, size=(1000, 32)))


def test_corpus_like_melodies():
    assert_matches_reference(corpus_like(1000, np.random.default_rng(7)))


@pytest.mark.parametrize(("key", "seed"), [("A minor", 1), ("F# major", 2), ("Bb minor", 3)])
def test_other_keys(key, seed):
    rng = np.random.default_rng(seed)
    assert_matches_reference(np.concatenate([rng.integers(0, 38, size=(100, 32)), corpus_like(100, rng)]), key)


def test_corpus_windows():
    if not CORPUS_FILE.is_file():
        pytest.skip(f"corpus file {CORPUS_FILE} not found (built by the corpus issue)")
    with np.load(str(CORPUS_FILE)) as data:
        tokens, offsets = data["tokens"].astype(np.int64), data["offsets"]
    # Bar-aligned 32-step windows (a 4/4 bar is 16 steps), as the reference's corpus figures use.
    starts = [s for begin, end in zip(offsets[:-1], offsets[1:], strict=True) for s in range(begin, end - 31, 16)]
    chosen = np.random.default_rng(0).choice(starts, size=min(1000, len(starts)), replace=False)
    assert_matches_reference(np.stack([tokens[s : s + 32] for s in chosen]))
