"""A policy that knows where in the piece it is: the learned bias per position (PositionBias) of both
architectures — no change before it is learned, stepping equals whole sequences, saved, loaded, transposed,
carried by a tuning run into its exported model, refused where the policy cannot carry it."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from notetune.agents.run import TuneError, TuneRun, load_run
from notetune.pretrained.checkpoint import load_checkpoint, save_checkpoint
from notetune.pretrained.lookback import LookbackConfig, LookbackLSTM
from notetune.pretrained.model import NoteRNN, NoteRNNConfig, with_position_bias
from notetune.pretrained.transpose import transpose_model
from notetune.scripts.cli import main
from tuning import stepped_log_probs, tiny_config


def tiny_models() -> list:
    torch.manual_seed(0)
    return [
        NoteRNN(NoteRNNConfig(embedding_dim=8, hidden_size=16)).eval(),
        LookbackLSTM(LookbackConfig(embedding_dim=8, hidden_size=16, lag_embedding_dim=4)).eval(),
    ]


def melodies(count: int = 3, length: int = 40) -> torch.Tensor:
    return torch.randint(0, 38, (count, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("index", [0, 1], ids=["note_rnn", "lookback_lstm"])
def test_a_position_bias_starts_as_the_prior_and_steps_as_a_whole_sequence(tmp_path, index):
    prior = tiny_models()[index]
    tokens = melodies()
    tokens[:, 5] = 7
    biased = with_position_bias(prior, 32)
    assert torch.equal(biased.sequence_log_probs(tokens), prior.sequence_log_probs(tokens))  # zero: KL = 0
    with torch.no_grad():
        biased.position.weight.normal_()
        biased.position.weight[5, 7] = 50.0  # the 6th token is almost surely token 7
    whole = biased.sequence_log_probs(tokens)
    assert (stepped_log_probs(biased, tokens) - whole).abs().max() < 1e-5
    assert (whole[:, 5] > torch.tensor(0.99).log()).all()
    # Past the table's 32 rows the bias is zero: the prior's conditionals (the history is the same tokens).
    assert torch.allclose(whole[:, 32:], prior.sequence_log_probs(tokens)[:, 32:], atol=1e-6)
    assert not torch.allclose(whole[:, :32], prior.sequence_log_probs(tokens)[:, :32])
    save_checkpoint(biased, tmp_path / "model")
    loaded, config = load_checkpoint(tmp_path / "model")
    assert config["model"]["position_bias"] == 32 and torch.allclose(loaded.sequence_log_probs(tokens), whole)
    longer = with_position_bias(loaded, 48)  # grows, keeping the rows it learned
    assert longer.position.weight.shape[0] == 48 and torch.allclose(
        longer.sequence_log_probs(tokens[:, :32]), whole[:, :32]
    )


def test_a_transposed_biased_model_moves_its_bias_with_the_pitches():
    prior = tiny_models()[0]
    biased = with_position_bias(prior, 8)
    with torch.no_grad():
        biased.position.weight[3, 20] = 4.0
    shifted = transpose_model(biased, 2)
    assert shifted.position.weight[3, 22] == 4.0 and shifted.position.weight[3, 20] == 0.0


def test_a_run_with_a_position_bias_exports_it_and_starts_at_kl_zero(tmp_path, tiny_prior_dir, tiny_corpus_path):
    config = tiny_config(tmp_path / "run", tiny_prior_dir, tiny_corpus_path, position_bias=True, steps=4096)
    run = TuneRun(config)
    actor = run.algorithm.policy.actor
    assert actor.position is not None and actor.position.weight.shape == (8, 38)
    tokens = melodies(4, 8)
    assert torch.equal(actor.sequence_log_probs(tokens), run.prior.sequence_log_probs(tokens))
    record = run.run()
    assert record["evaluations"][0]["stats"]["kl_per_composition"] == pytest.approx(0.0, abs=1e-4)
    exported, saved = load_checkpoint(tmp_path / "run" / "model")
    assert saved["model"]["position_bias"] == 8 and exported.position.weight.abs().sum() > 0
    # `evaluate` measures log p and KL against the prior the model was tuned from (--prior auto).
    figures = tmp_path / "evaluation.json"
    argv = ["evaluate", "--model", str(tmp_path / "run"), "--num", "16", "--length", "8", "--resamples", "10"]
    assert main([*argv, "--corpus", tiny_corpus_path, "--json", str(figures)]) == 0
    assert Path(json.loads(figures.read_text())["settings"]["prior"]) == Path(tiny_prior_dir).resolve()
    refused = tiny_config(tmp_path / "q", tiny_prior_dir, tiny_corpus_path, position_bias=True, algo="dqn")
    with pytest.raises(TuneError, match="--position-bias needs --algo ppo"):
        TuneRun(refused)


def test_a_long_run_saved_before_the_position_bias_resumes_without_it(tmp_path, tiny_prior_dir, tiny_corpus_path):
    out = tmp_path / "old"
    config = tiny_config(out, tiny_prior_dir, tiny_corpus_path, length=40, position_bias=False, steps=2560)
    TuneRun(dataclasses.replace(config, checkpoint_every=2560, eval_every=2560)).run()
    saved = json.loads((out / "config.json").read_text())
    del saved["position_bias"]  # as config.json was written before the field existed
    (out / "config.json").write_text(json.dumps(saved))
    resumed = load_run(out)
    assert resumed.config.position_bias is False and resumed.algorithm.policy.actor.position is None
