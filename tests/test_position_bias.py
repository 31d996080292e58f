"""A policy that knows where in the piece it is: the learned bias per position (PositionBias) of both
architectures — no change before it is learned, stepping equals whole sequences, saved, loaded, transposed,
carried by a tuning run into its exported model, refused where the policy cannot carry it; its phrase copies
under a soft form, whose diversity bounds read the untuned model written in the form; and the prior
`--prior auto` judges a tuned or untuned model against."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from notetune.agents.alarms import check_alarms
from notetune.agents.config import TuneConfig, with_length_defaults
from notetune.agents.run import TuneError, TuneRun, load_run
from notetune.agents.selection import DISTINCT_4GRAM_IN_FORM, CollapseRule, SelectionRule, collapse_reasons
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


def write(model, num: int, length: int, seed: int) -> torch.Tensor:
    """(num, length) tokens drawn step by step from ``model``, its state carried."""
    torch.manual_seed(seed)
    log_probs, state = model.start(num)
    written = []
    for _ in range(length):
        token = log_probs.exp().multinomial(1)[:, 0]
        written.append(token)
        log_probs, state = model.step(token, state)
    return torch.stack(written, 1)


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
    del saved["position_bias"], saved["phrase_copy"], saved["phrase_gate"]  # as written before the fields
    (out / "config.json").write_text(json.dumps(saved))
    resumed = load_run(out)
    assert resumed.config.position_bias is False and resumed.algorithm.policy.actor.position is None
    assert resumed.config.phrase_copy is False and resumed.config.phrase_gate is False


def test_a_soft_form_run_saved_before_the_phrase_gate_resumes_without_it(tmp_path, tiny_prior_dir, tiny_corpus_path):
    out = tmp_path / "old"
    config = tiny_config(
        out, tiny_prior_dir, tiny_corpus_path, length=32, form="AABA", position_bias=True, phrase_gate=False
    )
    TuneRun(dataclasses.replace(config, steps=2560, checkpoint_every=2560, eval_every=2560)).run()
    saved = json.loads((out / "config.json").read_text())
    del saved["phrase_gate"]
    (out / "config.json").write_text(json.dumps(saved))
    resumed = load_run(out)  # its checkpoint has no gate; a policy with one would not load it
    position = resumed.algorithm.policy.actor.position
    assert resumed.config.phrase_gate is False and position.copy is not None and position.gate is None


@pytest.mark.parametrize("index", [0, 1], ids=["note_rnn", "lookback_lstm"])
def test_a_phrase_gate_starts_at_zero_copies_a_whole_phrase_and_skips_the_primer(tmp_path, index):
    prior = tiny_models()[index]
    tokens = melodies(3, 26)
    gated = with_position_bias(prior, 26, (8, 16), phrase_start=2)  # a primer of 2, then three 8-step phrases
    assert gated.position.gate.shape == (3, 2)
    assert torch.equal(gated.sequence_log_probs(tokens), prior.sequence_log_probs(tokens))  # zero: KL = 0
    with torch.no_grad():
        gated.position.gate.normal_()
        gated.position.copy.normal_()
    assert (stepped_log_probs(gated, tokens) - gated.sequence_log_probs(tokens)).abs().max() < 1e-5
    with torch.no_grad():  # one weight, the second phrase's lag 8, copies all eight of its steps
        gated.position.copy.zero_()
        gated.position.gate.zero_()
        gated.position.gate[1, 0] = 1.0
    written = write(gated, 64, 26, seed=3)
    assert torch.equal(written[:, 10:18], written[:, 2:10])
    assert not torch.equal(written[:, 18:26], written[:, 10:18])  # the third phrase's gate is still zero
    before = gated.sequence_log_probs(tokens)
    assert torch.equal(before[:, :10], prior.sequence_log_probs(tokens)[:, :10])
    save_checkpoint(gated, tmp_path / "model")
    loaded, config = load_checkpoint(tmp_path / "model")
    assert config["model"]["phrase_start"] == 2 and torch.equal(loaded.position.gate, gated.position.gate)
    assert torch.allclose(loaded.sequence_log_probs(tokens), before)
    for again in (with_position_bias(loaded, 26), with_position_bias(loaded, 26, (8, 16))):  # tuned again
        assert torch.equal(again.position.gate, gated.position.gate)  # its gate is kept: KL = 0 at first
        assert torch.allclose(again.sequence_log_probs(tokens), before)
    with pytest.raises(ValueError, match="first step must be a row"):
        with_position_bias(prior, 26, (8, 16), phrase_start=26)


@pytest.mark.parametrize("index", [0, 1], ids=["note_rnn", "lookback_lstm"])
def test_phrase_copies_start_at_zero_step_as_a_whole_sequence_and_copy_earlier_phrases(tmp_path, index):
    prior = tiny_models()[index]
    tokens = melodies(3, 24)
    biased = with_position_bias(prior, 24, (8, 16))
    assert biased.position.copy.shape == (24, 2)
    assert torch.equal(biased.sequence_log_probs(tokens), prior.sequence_log_probs(tokens))  # zero: KL = 0
    with torch.no_grad():
        biased.position.copy.normal_()
    whole = biased.sequence_log_probs(tokens)
    assert (stepped_log_probs(biased, tokens) - whole).abs().max() < 1e-5
    with torch.no_grad():  # from step 8 on, copy the token 8 steps back; before it nothing is there to copy
        biased.position.copy.zero_()
        biased.position.copy[:, 0] = 1.0
    written = write(biased, 64, 24, seed=2)
    assert torch.equal(written[:, 8:], written[:, :-8])
    assert torch.equal(biased.sequence_log_probs(tokens)[:, :8], prior.sequence_log_probs(tokens)[:, :8])
    save_checkpoint(biased, tmp_path / "model")
    loaded, config = load_checkpoint(tmp_path / "model")
    assert config["model"]["phrase_lags"] == [8, 16] and loaded.position.phrase_lags == (8, 16)
    assert torch.allclose(loaded.sequence_log_probs(tokens), biased.sequence_log_probs(tokens))
    shifted = transpose_model(loaded, 2)  # copying is the same in every key
    assert torch.equal(shifted.position.copy, loaded.position.copy)


def test_a_soft_form_run_gives_its_policy_the_form_phrase_lags(tmp_path, tiny_prior_dir, tiny_corpus_path):
    def actor(name: str, **overrides):
        config = tiny_config(
            tmp_path / name, tiny_prior_dir, tiny_corpus_path, length=32, form="AABA", position_bias=True, **overrides
        )
        return TuneRun(config).algorithm.policy.actor

    assert actor("soft").position.phrase_lags == (8, 16, 24)
    assert actor("soft-gate", phrase_gate=True).position.gate.shape == (4, 3)  # one per phrase and lag, zero at first
    assert actor("no-gate").position.gate is None  # on by default only over 8 bars
    assert actor("off", phrase_copy=False).position.copy is None
    assert actor("strict", form_strict=True).position.copy is None  # the masks copy already


def test_a_soft_form_run_judges_diversity_against_the_untuned_model_written_in_the_form(
    tmp_path, tiny_prior_dir, tiny_corpus_path
):
    def untuned(name: str, **overrides) -> dict:
        config = tiny_config(tmp_path / name, tiny_prior_dir, tiny_corpus_path, length=32, steps=2048, **overrides)
        return TuneRun(dataclasses.replace(config, eval_every=2048, checkpoint_every=2048)).run()["untuned"]

    soft = untuned("soft", form="AABA")
    assert soft[DISTINCT_4GRAM_IN_FORM] < soft["distinct_4gram"]  # returns repeat 4-grams by design
    assert DISTINCT_4GRAM_IN_FORM not in untuned("free")
    assert DISTINCT_4GRAM_IN_FORM not in untuned("strict", form="AABA", form_strict=True)  # its own figure is in form
    # A model that learned the form, as diverse as the untuned model in the form: inside every bound.
    baseline = {"kl_per_composition": 0.0, "log_prior_per_token": -1.0, "hold_share": 0.6, "rest_share": 0.01}
    baseline.update(distinct_4gram=0.12, **{DISTINCT_4GRAM_IN_FORM: 0.088})
    formed = {**baseline, "distinct_4gram": 0.088, "distinct_melodies": 1.0}
    config = with_length_defaults(TuneConfig(), 128)
    assert SelectionRule.from_config(config).violations(formed, baseline) == []
    assert collapse_reasons({**formed, "distinct_4gram": 0.05}, baseline, CollapseRule.from_config(config)) == []
    assert check_alarms(formed, baseline, config, {}, {}) == []
    free = {key: value for key, value in baseline.items() if key != DISTINCT_4GRAM_IN_FORM}
    assert SelectionRule.from_config(config).violations(formed, free) == ["distinct-4gram 0.088 < 0.8× untuned"]


def test_auto_judges_an_untuned_model_against_itself_and_tuned_ones_against_their_prior(tmp_path):
    import numpy as np
    from notetune.agents.sources import SampleSource, reference_prior

    lookback, tuned_from = tmp_path / "lookback", tmp_path / "prior"
    lookback.mkdir(), tuned_from.mkdir()
    tokens = np.zeros((1, 8), dtype=np.int64)
    untuned = SampleSource("lookback", "model", "lookback", tokens, checkpoint=lookback)
    tuned = SampleSource("run", "model", "run", tokens, checkpoint=tmp_path, tuned={"from_prior": str(tuned_from)})
    corpus = SampleSource("corpus", "corpus", "corpus.npz", tokens)
    assert reference_prior("auto", [untuned]) == str(lookback)
    assert reference_prior("auto", [untuned, corpus]) == str(lookback)
    assert reference_prior("auto", [untuned, tuned]) == str(tuned_from)  # the tuned model's prior decides
    assert reference_prior("auto", [corpus]) == "default"
    assert reference_prior("default", [untuned]) == "default"
