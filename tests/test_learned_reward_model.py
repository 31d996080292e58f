"""The Bradley–Terry reward model: it learns a separable preference, its ensemble spread shrinks with data,
it is saved and refused like every checkpoint, and as `learned:DIR` it pays at the last step only."""

import json

import numpy as np
import pytest
from notetune.pretrained.checkpoint import CheckpointError, save_checkpoint
from notetune.pretrained.model import NoteRNN, NoteRNNConfig
from notetune.pretrained.reward_model import RewardModelConfig, load_reward_model, save_reward_model
from notetune.pretrained.reward_training import RewardTraining, preference_metrics, train_ensemble
from notetune.pretrained.vocab import Vocabulary
from notetune.rewards.reward_set import RewardSet
from notetune.scripts.cli import main

TOY = Vocabulary(min_pitch=60, max_pitch=63)  # 6 tokens
LENGTH = 8
FAST = RewardTraining(epochs=30, batch_size=128, learning_rate=2e-2, patience=4)


def toy_pairs(count, seed):
    """Melodies of toy tokens; the listener prefers the one that strikes more C4s (token 2)."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, TOY.size, (2, 3 * count, LENGTH))
    liked_a, liked_b = (a == 2).sum(1), (b == 2).sum(1)
    keep = np.flatnonzero(liked_a != liked_b)[:count]
    return a[keep], b[keep], (liked_a[keep] > liked_b[keep]).astype(float)


def toy_config(members=3, architecture="sequence", prior=None):
    return RewardModelConfig(vocab=TOY, architecture=architecture, members=members, hidden_size=8, prior=prior)


def test_bradley_terry_fit_separates_a_separable_toy_set():
    a, b, target = toy_pairs(300, seed=0)
    model = train_ensemble(toy_config(members=2), a, b, target, FAST, seed=0)
    test_a, test_b, test_target = toy_pairs(200, seed=1)
    metrics = preference_metrics(model.preference_probability(test_a, test_b), test_target)
    assert metrics["pairwise_accuracy"] >= 0.9
    assert metrics["log_loss"] < np.log(2) and metrics["ece"] < 0.2
    mean, _ = model.score(np.array([[2] * LENGTH, [3] * LENGTH]))
    assert mean[0] > mean[1]  # all C4s beats no C4s


def test_prior_head_reads_the_frozen_priors_features():
    prior = NoteRNN(NoteRNNConfig(vocab=TOY, embedding_dim=4, hidden_size=8))
    a, b, target = toy_pairs(200, seed=0)
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    model = train_ensemble(toy_config(architecture="prior_head", prior=prior.config), a, b, target, FAST, prior)
    assert all(np.array_equal(before[k], v) for k, v in model.features.prior.state_dict().items())
    assert preference_metrics(model.preference_probability(a, b), target)["pairwise_accuracy"] > 0.6


def test_ensemble_spread_shrinks_with_more_data():
    fresh = np.random.default_rng(9).integers(0, TOY.size, (500, LENGTH))
    spreads = []
    for count in (20, 200):
        a, b, target = toy_pairs(count, seed=2)
        model = train_ensemble(toy_config(members=5), a, b, target, FAST, seed=0)
        spreads.append(model.score(fresh)[1].mean())
    assert spreads[1] < 0.7 * spreads[0]


def test_saved_model_scores_the_same_and_refuses_another_vocabulary(tmp_path):
    a, b, target = toy_pairs(100, seed=0)
    model = train_ensemble(toy_config(), a, b, target, FAST)
    save_reward_model(model, tmp_path / "rm")
    loaded, config = load_reward_model(tmp_path / "rm", expected_vocab=TOY)
    assert config["format"] == "notetune.reward_model"
    np.testing.assert_allclose(loaded.score(a)[0], model.score(a)[0], rtol=1e-6)
    with pytest.raises(CheckpointError, match=r"fitted for vocabulary .*\(6 tokens\).*\(38 tokens\)"):
        load_reward_model(tmp_path / "rm", expected_vocab=Vocabulary())
    with pytest.raises(CheckpointError, match="fitted for vocabulary"):
        RewardSet.from_spec(f"notetune,learned:{tmp_path / 'rm'}")  # a 38-token reward set
    save_checkpoint(NoteRNN(NoteRNNConfig(vocab=TOY)), tmp_path / "prior")
    with pytest.raises(CheckpointError, match="is a Note RNN checkpoint, not a reward model"):
        load_reward_model(tmp_path / "prior")


def test_learned_reward_is_paid_at_the_last_step_conservatively(tmp_path):
    a, b, target = toy_pairs(100, seed=0)
    model = train_ensemble(toy_config(), a, b, target, FAST)
    save_reward_model(model, tmp_path / "rm")
    rewards = RewardSet.from_spec(f"learned:{tmp_path / 'rm'}=2", vocab=TOY, length=LENGTH)
    assert rewards.names == ("learned",) and rewards.weights == {"learned": 2.0}
    terms = rewards.evaluate(a[:5])["learned"]
    mean, spread = model.score(a[:5])
    assert np.all(terms[:, :-1] == 0)
    np.testing.assert_allclose(terms[:, -1], mean - spread, rtol=1e-5)  # spread_penalty 1 by default


def test_cli_score_writes_mean_and_spread_in_input_order(tmp_path, capsys):
    a, b, target = toy_pairs(100, seed=0)
    model = train_ensemble(toy_config(), a, b, target, FAST)
    save_reward_model(model, tmp_path / "rm")
    np.savez(tmp_path / "x.npz", tokens=a[:7])
    out = tmp_path / "scores.json"
    assert main(["reward", "score", "--model", str(tmp_path / "rm"), "--samples", str(tmp_path / "x.npz"),
                 "--json", str(out)]) == 0  # fmt: skip
    scores = json.loads(out.read_text())
    mean, spread = model.score(a[:7])
    np.testing.assert_allclose(scores["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(scores["spread"], spread, rtol=1e-6)
    assert main(["reward", "score", "--model", str(tmp_path), "--samples", "x.npz", "--json", "o.json"]) == 2
    assert "is not a reward model" in capsys.readouterr().err


def test_held_out_split_keeps_listeners_apart():
    from notetune.agents.reward_fit import split_pairs
    from notetune.rewards.preferences import parse_preferences

    lines = [json.dumps({"a": [14, 1], "b": [16, 1], "winner": "a", "listener": f"l{i % 5}"}) for i in range(50)]
    data = parse_preferences(lines)
    train, held_out, by = split_pairs(data, 0.2, seed=0)
    assert by == "listener" and len(train) + len(held_out) == 50 and len(held_out) >= 10
    assert not {data.pairs[i].listener for i in train} & {data.pairs[i].listener for i in held_out}
    _, held_out, by = split_pairs(parse_preferences([json.dumps({"a": [14], "b": [16], "winner": "b"})] * 10), 0.3, 0)
    assert by == "pair" and len(held_out) == 3


def test_cli_fit_reports_held_out_figures_and_skipped_lines(tmp_path, capsys):
    rng = np.random.default_rng(0)
    melodies = rng.choice([1, 14, 16, 18, 21], size=(120, 8))
    lines = [
        json.dumps({"a": a.tolist(), "b": b.tolist(), "winner": "a" if a.max() > b.max() else "b"})
        for a, b in zip(melodies[:60], melodies[60:], strict=True)
    ]
    (tmp_path / "prefs.jsonl").write_text("\n".join([*lines, "{oops", '{"a": [99], "b": [1], "winner": "a"}']) + "\n")
    out = tmp_path / "rm"
    argv = ["reward", "fit", "--preferences", str(tmp_path / "prefs.jsonl"), "--out", str(out),
            "--architecture", "sequence", "--members", "2", "--epochs", "5"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "60 pairs" in printed and "skipped 1 malformed" in printed and "1 out_of_vocabulary" in printed
    assert "held_out accuracy" in printed and f"--reward learned:{out}" in printed
    metrics = json.loads((out / "config.json").read_text())["metrics"]
    assert metrics["split"] == {"by": "pair", "train_pairs": 48, "held_out_pairs": 12}
    assert set(metrics["held_out"]) == {"pairs", "pairwise_accuracy", "log_loss", "ece"}
    assert main(["reward", "fit", "--preferences", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "preferences file" in capsys.readouterr().err
