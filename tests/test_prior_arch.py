"""Prior architectures: the Lookback LSTM behind the prior interface, `arch` in checkpoints, --device, max-minutes 0."""

import json

import numpy as np
import pytest
import torch
from notetune.agents.policy import MelodyPolicy
from notetune.envs.vec_env import MelodyVecEnv
from notetune.pretrained.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.lookback import LookbackConfig, LookbackLSTM
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.train import PretrainConfig, PretrainConfigError, learning_rate_at, pretrain
from notetune.pretrained.transpose import OUT_OF_RANGE_LOGIT, transpose_model
from notetune.rewards.reward_set import RewardSet
from notetune.scripts.cli import main
from tuning import stepped_log_probs


@pytest.fixture(scope="module")
def lookback() -> LookbackLSTM:
    torch.manual_seed(0)
    return LookbackLSTM(LookbackConfig(embedding_dim=8, hidden_size=16, lag_embedding_dim=4)).eval()


def repeating_melodies(count: int = 3, length: int = 150, seed: int = 0) -> torch.Tensor:
    """Random melodies whose bars 5-8 repeat bars 1-4 (so every copy path of the model is exercised)."""
    tokens = torch.randint(0, 38, (count, length), generator=torch.Generator().manual_seed(seed))
    tokens[:, 64:128] = tokens[:, :64]
    tokens[:, 128:144] = torch.where(tokens[:, 112:128] >= 2, (tokens[:, 112:128] + 2).clamp(max=37), 1)
    return tokens


def test_stepping_with_carried_state_equals_whole_sequence_log_probs(lookback):
    tokens = repeating_melodies()
    whole = lookback.sequence_log_probs(tokens)
    assert (stepped_log_probs(lookback, tokens) - whole).abs().max() < 1e-5
    # The same across two forward calls that hand the state (LSTM + 65-token ring) from one to the next.
    start = torch.full((3, 1), lookback.start_token)
    first, state = lookback(torch.cat([start, tokens[:, :70]], 1))
    second, _ = lookback(tokens[:, 70:-1], state)
    chunked = torch.log_softmax(torch.cat([first, second], 1), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert (chunked - whole).abs().max() < 1e-5
    # Log-probabilities of a proper distribution at every step.
    logits, _ = lookback(torch.cat([start, tokens[:, :-1]], 1))
    assert torch.logsumexp(logits, -1).abs().max() < 1e-4


def test_a_gate_that_copies_one_bar_back_repeats_the_bar(lookback):
    model = LookbackLSTM(lookback.config).eval()
    model.load_state_dict(lookback.state_dict())
    with torch.no_grad():  # all weight on "copy the token 16 steps back" (gate component 1)
        model.gate.weight.zero_()
        model.gate.bias.fill_(-30.0)
        model.gate.bias[1] = 30.0
    tokens = repeating_melodies()
    log_probs = model.sequence_log_probs(tokens)
    # From step 16 on, the token 16 back is certain; where a bar differs from the one before it is not.
    same = tokens[:, 16:] == tokens[:, :-16]
    assert log_probs[:, 16:][same].min() > -1e-3
    assert log_probs[:, 16:][~same].max() < -10


def test_lookback_saves_loads_and_records_its_arch(tmp_path, lookback):
    save_checkpoint(lookback, tmp_path / "lookback", extra={"key": "C major"})
    config = json.loads((tmp_path / "lookback" / "config.json").read_text())
    assert config["arch"] == "lookback_lstm" and config["model"]["lags"] == [16, 32, 64]
    loaded, _ = load_checkpoint(tmp_path / "lookback")
    assert isinstance(loaded, LookbackLSTM) and loaded.config == lookback.config
    tokens = repeating_melodies(2)
    assert torch.equal(loaded.sequence_log_probs(tokens), lookback.sequence_log_probs(tokens))
    np.testing.assert_array_equal(sample_tokens(loaded, 8, 80, seed=3), sample_tokens(lookback, 8, 80, seed=3))


def test_lstm_checkpoints_record_arch_and_old_ones_without_it_load_as_the_lstm(tmp_path, tiny_prior):
    save_checkpoint(tiny_prior, tmp_path / "lstm")
    path = tmp_path / "lstm" / "config.json"
    config = json.loads(path.read_text())
    assert config["arch"] == "note_rnn"
    del config["arch"]  # as written before architectures had names
    path.write_text(json.dumps(config))
    loaded, _ = load_checkpoint(tmp_path / "lstm")
    assert type(loaded) is NoteRNN
    config["arch"] = "transformer_xl"
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown prior architecture 'transformer_xl'; known: note_rnn, lookback"):
        load_checkpoint(tmp_path / "lstm")


def test_transposed_lookback_plays_the_same_melody_higher(lookback):
    up = transpose_model(lookback, 2)
    assert isinstance(up, LookbackLSTM)
    # A melody in a narrow middle range, so nothing it copies leaves the vocabulary on either side.
    tokens = torch.randint(14, 22, (4, 100), generator=torch.Generator().manual_seed(1))
    tokens[:, 1::2] = 1
    tokens[:, 48:96] = tokens[:, :48]
    shifted = torch.where(tokens >= 2, tokens + 2, tokens)
    # The two top pitches have nowhere to go: the shifted model is the original without them (renormalised).
    reference = LookbackLSTM(lookback.config).eval()
    reference.load_state_dict(lookback.state_dict())
    with torch.no_grad():
        reference.head.bias[-2:] = OUT_OF_RANGE_LOGIT
    assert (up.sequence_log_probs(shifted) - reference.sequence_log_probs(tokens)).abs().max() < 1e-5
    assert up.start(1)[0][0, 2:4].exp().max() == 0  # nothing below the shifted range


def test_policy_from_a_lookback_prior_equals_the_prior_and_steps_like_it(lookback):
    env = MelodyVecEnv(lookback, RewardSet.from_spec("notetune", length=150), num_envs=4, length=150)
    policy = MelodyPolicy(env.observation_space, env.action_space, lambda _: 1e-4, prior=lookback)
    tokens = repeating_melodies(4)
    log_probs, _, values = policy.evaluate_sequences(tokens)
    assert (log_probs - lookback.sequence_log_probs(tokens)).abs().max() < 1e-5
    last, state = policy.warm_state(4)
    stepped = []
    for t in range(150):
        logits, _, state = policy.step(last, state, t)
        stepped.append(torch.log_softmax(logits, -1).gather(1, tokens[:, t : t + 1])[:, 0])
        last = tokens[:, t]
    assert (torch.stack(stepped, 1) - log_probs).abs().max() < 1e-5
    assert values.shape == (4, 150)


@pytest.mark.parametrize("algo", ["dqn", "psi", "g"])
def test_q_learners_start_from_a_lookback_prior_and_export_what_they_learned(tmp_path, algo, lookback):
    from notetune.agents.config import TuneConfig
    from notetune.agents.dqn import build_q_learner

    cfg = TuneConfig(algo=algo, num_envs=2, length=70, learning_starts=10, batch_size=8)
    learner = build_q_learner(cfg, lookback, RewardSet.from_spec("notetune", length=70))
    tokens = repeating_melodies(4)[:, :70]
    expected = lookback.sequence_log_probs(tokens)
    # Boltzmann over Q is the prior before training (dqn/psi: Q = identity · log p; g: Q = 0, π ∝ exp(Q)·p).
    assert (learner.policy.export_actor().sequence_log_probs(tokens) - expected).abs().max() < 1e-5
    learner.learn(200)
    exported = learner.policy.export_actor()
    moved = (exported.sequence_log_probs(tokens) - expected).abs().max()
    assert moved > 1e-4  # Q-learning changed the policy
    save_checkpoint(exported, tmp_path / algo)
    loaded, config = load_checkpoint(tmp_path / algo)
    assert config["arch"] == "lookback_lstm"
    assert torch.allclose(loaded.sequence_log_probs(tokens), exported.sequence_log_probs(tokens), atol=1e-6)
    assert sample_tokens(transpose_model(loaded, 3), 4, 70).shape == (4, 70)


def tiny_pretrain(tmp_path, corpus, **overrides) -> PretrainConfig:
    fields = dict(
        corpus=corpus,
        out=str(tmp_path / "prior"),
        embedding_dim=8,
        hidden_size=16,
        batch_size=16,
        max_epochs=1,
        evaluations_per_epoch=1,
        threads=1,
        progress=False,
        markov_baseline=False,
        validation_fraction=0.2,
    )
    fields.update(overrides)
    return PretrainConfig(**fields)


def test_pretrain_arch_lookback_on_the_cpu_device_writes_a_lookback_checkpoint(tmp_path, tiny_corpus_path):
    metrics = pretrain(tiny_pretrain(tmp_path, tiny_corpus_path, arch="lookback_lstm", device="cpu"))
    model, config = load_checkpoint(tmp_path / "prior")
    assert isinstance(model, LookbackLSTM) and config["arch"] == "lookback_lstm"
    assert config["pretrain_config"]["device"] == "cpu"
    assert np.isfinite(metrics["validation"]["nll_per_token"])
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert token_log_probs(model, sample_tokens(model, 4, 20)).shape == (4, 20)


def test_pretrain_lags_choose_how_far_back_a_lookback_prior_copies(tmp_path, tiny_corpus_path):
    pretrain(tiny_pretrain(tmp_path, tiny_corpus_path, arch="lookback_lstm", lags=(4, 8)))
    model, config = load_checkpoint(tmp_path / "prior")
    assert model.config.lags == (4, 8) and config["model"]["lags"] == [4, 8]
    with pytest.raises(UserInputError, match="--lags is for --arch lookback_lstm"):
        pretrain(tiny_pretrain(tmp_path, tiny_corpus_path, arch="note_rnn", lags=(4,)))
    with pytest.raises(UserInputError, match="--lags must be distinct positive"):
        pretrain(tiny_pretrain(tmp_path, tiny_corpus_path, arch="lookback_lstm", lags=(4, 4)))


def test_pretrain_refuses_an_unavailable_device_with_one_line(tmp_path, tiny_corpus_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(PretrainConfigError, match="no CUDA GPU is available here; use --device cpu"):
        pretrain(tiny_pretrain(tmp_path, tiny_corpus_path, device="cuda"))
    with pytest.raises(PretrainConfigError, match="unknown device 'gpu0'"):
        pretrain(tiny_pretrain(tmp_path, tiny_corpus_path, device="gpu0"))


def test_max_minutes_zero_means_no_time_limit(tmp_path, tiny_corpus_path):
    config = tiny_pretrain(tmp_path, tiny_corpus_path, max_minutes=0.0, max_epochs=2)
    assert learning_rate_at(config, 1e6) == config.learning_rate
    metrics = pretrain(config)  # divided by the zero budget before
    assert metrics["steps"] > 0 and len(metrics["history"]) == 2


def test_the_sampler_draws_each_token_at_its_probability_and_never_a_forbidden_one():
    from notetune.pretrained.sampling import draw

    probabilities = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]]).expand(200_000, -1)
    drawn = draw(probabilities, torch.Generator().manual_seed(0))
    shares = torch.bincount(drawn, minlength=6).double() / len(drawn)
    assert shares[[0, 2, 5]].sum() == 0
    assert torch.allclose(shares[[1, 3, 4]], torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.005)


def test_the_shipped_priors_load_by_name():
    default, default_config = load_checkpoint("default")
    lookback, lookback_config = load_checkpoint("lookback")
    assert type(default) is NoteRNN and default_config["metrics"]["validation"]["nll_per_token"] < 0.83
    assert lookback_config["arch"] == lookback.arch == "lookback_lstm"
    assert lookback_config["metrics"]["validation"]["nll_per_token"] < 0.74
    far, far_config = load_checkpoint("lookback128")  # the prior of pieces over 8 bars: it reads 8 bars back
    assert far.arch == "lookback_lstm" and far.config.lags == (16, 32, 64, 128)
    assert far_config["metrics"]["validation"]["nll_per_token"] < 0.73


def test_every_command_takes_the_shipped_priors_by_name(tmp_path, capsys):
    assert main(["evaluate", "--model", "lookback", "--num", "16", "--resamples", "10"]) == 0
    assert "16 melodies from lookback evaluated" in capsys.readouterr().out
    assert main(["compare", "default", "lookback", "--num", "16", "--out", str(tmp_path / "report")]) == 0
    assert main(["evaluate", "--model", "lookbak", "--num", "16"]) == 2
    assert "model lookbak not found" in capsys.readouterr().err
