"""DPO/IPO: the loss on a hand-made pair, KL = 0 before the first update, and the exported model."""

import json
import math

import pytest
import torch
from notetune.agents.dpo import DPOConfig, dpo_loss, train_dpo
from notetune.pretrained.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from notetune.pretrained.model import NoteRNN, NoteRNNConfig


def test_dpo_and_ipo_losses_on_a_hand_made_pair():
    # log π(a) = −10, log π(b) = −12, both −11 under the reference: h = (−10 + 11) − (−12 + 11) = 2.
    policy_a, policy_b, reference = torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-11.0])

    def loss(target, kind):
        return float(dpo_loss(policy_a, policy_b, reference, reference, torch.tensor([target]), 0.5, kind))

    assert loss(1.0, "sigmoid") == pytest.approx(math.log1p(math.exp(-1.0)))  # −log σ(β h), β h = 1
    assert loss(0.0, "sigmoid") == pytest.approx(math.log1p(math.exp(1.0)))  # b won: −log σ(−β h)
    assert loss(1.0, "ipo") == pytest.approx(1.0)  # (h − 1/(2β))² = (2 − 1)²
    assert loss(0.0, "ipo") == pytest.approx(9.0)  # (h + 1/(2β))²
    assert loss(0.5, "ipo") == pytest.approx(4.0)  # a tie pulls h to 0
    with pytest.raises(ValueError, match="unknown DPO loss 'kto'"):
        loss(1.0, "kto")


def preference_lines(count=40):
    up = [14, 1, 16, 1, 18, 1, 19, 1]
    down = [19, 1, 18, 1, 16, 1, 14, 1]
    return [json.dumps({"a": up, "b": down, "winner": "a" if i % 4 else "tie"}) for i in range(count)]


def test_kl_is_zero_before_the_first_update_and_the_run_exports_a_model(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(NoteRNN(NoteRNNConfig(embedding_dim=8, hidden_size=16)), tmp_path / "prior")
    config = DPOConfig(
        prior=str(tmp_path / "prior"), out=str(tmp_path / "run"), epochs=3, learning_rate=1e-2, eval_size=64,
        length=8, held_out=0.25,
    )  # fmt: skip
    record = train_dpo(config, preference_lines())
    start, last = record["history"][0], record["history"][-1]
    assert start["epoch"] == 0 and start["kl_per_composition"] == pytest.approx(0.0, abs=1e-5)
    assert start["held_out_loss"] == pytest.approx(math.log(2))  # h = 0 on every pair, decided or tied
    assert last["kl_per_composition"] > 0.01 and last["held_out_loss"] < start["held_out_loss"]
    model, model_config = load_checkpoint(find_checkpoint(tmp_path / "run"))  # the run directory resolves
    assert model_config["tuned"]["algo"] == "dpo" and model_config["tuned"]["epoch"] == record["chosen"]["epoch"] > 0
    up = torch.tensor([[14, 1, 16, 1, 18, 1, 19, 1]])
    prior, _ = load_checkpoint(tmp_path / "prior")
    assert model.sequence_log_probs(up).sum() > prior.sequence_log_probs(up).sum()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reward", "dpo", "--preferences", "p.jsonl", "--beta", "0"], "--beta must be positive"),
        (["reward", "fit", "--preferences", "p.jsonl", "--held-out", "1.5"], "--held-out is a share"),
        (["reward", "simulate", "--noise", "-1"], "--noise must be 0 or more"),
        (["reward", "simulate", "--models", "a", "b", "--seeds"], "--seeds pairs two seeds of one model"),
    ],
)
def test_bad_settings_fail_with_one_line(argv, message, capsys):
    from notetune.scripts.cli import main

    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
