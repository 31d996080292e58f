"""The Note RNN's interface, checkpoints (and their refusals), short training and sampling."""

import json

import numpy as np
import pytest
import torch
from notetune.pretrained.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from notetune.pretrained.model import NoteRNN, NoteRNNConfig, PriorProduct
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.train import PretrainConfig, pretrain
from notetune.pretrained.vocab import Vocabulary


def test_step_by_step_equals_the_sequence(tiny_prior):
    tokens = torch.tensor([[14, 1, 16, 0, 18, 1, 1, 21]])
    whole = tiny_prior.sequence_log_probs(tokens)[0]
    log_probs, state = tiny_prior.start(1)
    stepped = []
    for token in tokens[0]:
        stepped.append(log_probs[0, token])
        log_probs, state = tiny_prior.step(token.view(1), state)
    assert torch.allclose(whole, torch.stack(stepped), atol=1e-5)


def test_save_and_load_give_the_same_model(tmp_path, tiny_prior):
    save_checkpoint(tiny_prior, tmp_path / "ckpt", extra={"metrics": {"nll": 1.0}})
    loaded, config = load_checkpoint(tmp_path / "ckpt")
    tokens = torch.randint(0, 38, (4, 16))
    assert torch.equal(loaded.sequence_log_probs(tokens), tiny_prior.sequence_log_probs(tokens))
    assert config["model"]["vocab"] == {"min_pitch": 48, "max_pitch": 83, "steps_per_quarter": 4}
    assert config["metrics"] == {"nll": 1.0}


def test_checkpoint_for_another_vocabulary_is_refused(tmp_path):
    other = NoteRNN(NoteRNNConfig(vocab=Vocabulary(36, 95), embedding_dim=4, hidden_size=8))
    save_checkpoint(other, tmp_path / "wide")
    with pytest.raises(CheckpointError, match=r"62 tokens.*38 tokens"):
        load_checkpoint(tmp_path / "wide", expected_vocab=Vocabulary())


def test_weights_that_do_not_match_the_config_are_refused(tmp_path, tiny_prior):
    save_checkpoint(tiny_prior, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["model"]["hidden_size"] = 32
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match config.json.*hidden|does not match config.json"):
        load_checkpoint(tmp_path / "ckpt")


def test_truncated_weights_and_pickles_are_refused(tmp_path, tiny_prior):
    save_checkpoint(tiny_prior, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "ckpt")
    torch.save(tiny_prior.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="pickled.*safetensors"):
        load_checkpoint(tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not found"):
        find_checkpoint(tmp_path / "missing")


def test_prior_product_checkpoint_round_trip(tmp_path, tiny_prior):
    torch.manual_seed(1)
    q_net = NoteRNN(tiny_prior.config).eval()
    product = PriorProduct(q_net, tiny_prior)
    save_checkpoint(product, tmp_path / "g")
    loaded, config = load_checkpoint(tmp_path / "g")
    assert config["architecture"] == "prior_product" and isinstance(loaded, PriorProduct)
    tokens = torch.randint(0, 38, (3, 8))
    expected = torch.log_softmax(q_net(tokens)[0] + torch.log_softmax(tiny_prior(tokens)[0], -1), -1)
    assert torch.allclose(loaded(tokens)[0].log_softmax(-1), expected, atol=1e-5)


def test_sampling_is_reproducible_and_uses_the_vocabulary(tiny_prior):
    a = sample_tokens(tiny_prior, 50, 32, seed=3)
    b = sample_tokens(tiny_prior, 50, 32, seed=3)
    assert a.shape == (50, 32) and a.min() >= 0 and a.max() < 38
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample_tokens(tiny_prior, 50, 32, seed=4))
    tokens, log_probs = sample_tokens(tiny_prior, 20, 16, seed=0, return_log_probs=True)
    assert np.allclose(log_probs, token_log_probs(tiny_prior, tokens), atol=1e-5)


def test_masked_sampling_respects_the_mask(tiny_prior):
    allowed = np.zeros((16, 38), dtype=bool)
    allowed[:, [14, 18, 21, 1]] = True
    tokens = sample_tokens(tiny_prior, 100, 16, allowed=allowed)
    assert set(np.unique(tokens)) <= {1, 14, 18, 21}


def test_short_pretraining_lowers_validation_loss(tmp_path, tiny_corpus_path):
    config = PretrainConfig(
        corpus=tiny_corpus_path,
        out=str(tmp_path / "prior"),
        embedding_dim=8,
        hidden_size=16,
        batch_size=8,
        learning_rate=1e-2,
        max_epochs=4,
        max_minutes=1.0,
        evaluations_per_epoch=2,
        patience=20,
        threads=1,
        progress=False,
        validation_fraction=0.2,
    )
    metrics = pretrain(config)
    history = [h["nll_per_token"] for h in metrics["history"]]
    assert history[-1] < history[0] - 0.3
    assert metrics["validation"]["nll_per_token"] == min(history)
    assert 0 <= metrics["validation"]["onset_accuracy"] <= 1 and 0 < metrics["validation"]["accuracy"] <= 1
    assert metrics["markov_baseline"]["best_nll"] > 0
    model, config_json = load_checkpoint(tmp_path / "prior")
    assert config_json["corpus"]["melodies"] == 60
    assert (tmp_path / "prior" / "tensorboard").is_dir()
