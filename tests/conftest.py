"""Shared fixtures: a tiny Note RNN and a tiny corpus, so tests never wait on the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from notetune.pretrained.checkpoint import save_checkpoint
from notetune.pretrained.corpus import BuildSummary, Melody, write_corpus
from notetune.pretrained.model import NoteRNN, NoteRNNConfig
from notetune.pretrained.vocab import DEFAULT_VOCABULARY

# Tests are tiny; one thread avoids oversubscribing a 2-core machine that may be training something.
torch.set_num_threads(1)


def scale_melody(rng: np.random.Generator, length: int = 64) -> np.ndarray:
    """A canonical C-major melody: scale steps with holds and the occasional rest."""
    tokens = []
    pitch = 14
    while len(tokens) < length:
        pitch = int(np.clip(pitch + rng.choice([-2, -1, 1, 2, 0]), 2, 36))
        if pitch % 12 in (3, 5, 8, 10, 1):  # keep to white keys relative to token 14 = C4
            pitch += 1
        tokens.append(pitch)
        tokens.extend([1] * int(rng.choice([0, 1, 1, 3])))
        if rng.random() < 0.05:
            tokens.extend([0, 1])
    return np.array(tokens[:length], dtype=np.int64)


@pytest.fixture(scope="session")
def tiny_prior() -> NoteRNN:
    torch.manual_seed(0)
    return NoteRNN(NoteRNNConfig(embedding_dim=8, hidden_size=16)).eval()


@pytest.fixture(scope="session")
def tiny_prior_dir(tmp_path_factory, tiny_prior) -> str:
    directory = tmp_path_factory.mktemp("tiny_prior")
    save_checkpoint(tiny_prior, directory, extra={"key": "C major"})
    return str(directory)


@pytest.fixture(scope="session")
def tiny_corpus_path(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    melodies = [
        Melody(scale_melody(rng, int(rng.integers(40, 120))).astype(np.uint8), f"synthetic/{i}", "C major", 0)
        for i in range(60)
    ]
    path = tmp_path_factory.mktemp("corpus") / "corpus.npz"
    write_corpus(melodies, path, DEFAULT_VOCABULARY, BuildSummary())
    return str(path)


@pytest.fixture(scope="module")
def listening_test(tmp_path_factory, tiny_prior_dir, tiny_corpus_path):
    """A blind A/B test of 8 pairs: the tiny prior ("tuned model") against the tiny corpus ("human corpus")."""
    from notetune.agents.sources import load_source
    from notetune.scripts.listening import export_listening_test

    out = tmp_path_factory.mktemp("listening") / "test"
    a = load_source(tiny_prior_dir, num=8, label="tuned model")
    b = load_source(tiny_corpus_path, num=8, label="human corpus")
    export_listening_test(a, b, out, pairs=8, seed=3)
    return out
