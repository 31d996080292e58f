"""`notetune tune --algo dpo --preferences FILE`: DPO through the tuning command, its run directory like any run's."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from notetune.agents.config import TuneConfig
from notetune.agents.dpo import DPOConfig, dpo_config
from notetune.agents.run import TuneError, TuneRun
from notetune.pretrained.checkpoint import find_checkpoint, load_checkpoint
from notetune.scripts.cli import main

UP = [14, 1, 16, 1, 18, 1, 19, 1]
DOWN = [19, 1, 18, 1, 16, 1, 14, 1]


@pytest.fixture
def preferences(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps({"a": UP, "b": DOWN, "winner": "a"}) + "\n" for _ in range(40)))
    return str(path)


def test_tune_algo_dpo_writes_a_run_that_sample_and_evaluate_accept(tmp_path, preferences, tiny_prior_dir, capsys):
    run = tmp_path / "run"
    tune = ["tune", "--algo", "dpo", "--preferences", preferences, "--prior", tiny_prior_dir, "--out", str(run)]
    settings = ["--dpo-epochs", "2", "--dpo-loss", "ipo", "--dpo-beta", "0.5", "--learning-rate", "1e-2"]
    settings += ["--confirm-size", "64", "--length", "8", "--threads", "1", "--max-kl", "100"]
    assert main([*tune, *settings]) == 0
    printed = capsys.readouterr().out
    assert f"run directory: {run}" in printed and "40 pairs (a 40, b 0, tie 0)" in printed
    saved = json.loads((run / "config.json").read_text())
    assert set(saved) == {field.name for field in dataclasses.fields(TuneConfig)}
    assert (saved["algo"], saved["dpo_loss"], saved["dpo_beta"], saved["dpo_epochs"]) == ("dpo", "ipo", 0.5, 2)
    record = json.loads((run / "run.json").read_text())
    assert (record["config"]["loss"], record["config"]["beta"], record["config"]["eval_size"]) == ("ipo", 0.5, 64)
    assert [row["epoch"] for row in record["history"]] == [0, 1, 2] and record["chosen"]["epoch"] > 0
    assert record["final_metrics"]["epoch"] == record["chosen"]["epoch"]
    assert (run / "model" / "model.safetensors").is_file()

    # IPO pulls h = [log π(up) − log p(up)] − [log π(down) − log p(down)] towards 1 / (2β) = 1 nat.
    tuned, _ = load_checkpoint(find_checkpoint(run))
    prior, _ = load_checkpoint(tiny_prior_dir)
    pair = torch.tensor([UP, DOWN])
    with torch.no_grad():
        up, down = (tuned.sequence_log_probs(pair) - prior.sequence_log_probs(pair)).sum(dim=1)
    assert 0.3 < float(up - down) < 1.5

    assert main(["sample", "--model", str(run), "--num", "20", "--length", "8", "--out", str(tmp_path / "s")]) == 0
    with np.load(tmp_path / "s" / "samples.npz") as samples:
        assert samples["tokens"].shape == (20, 8)
    evaluate = ["evaluate", "--model", str(run), "--num", "64", "--length", "8", "--prior", tiny_prior_dir]
    assert main([*evaluate, "--corpus", "none", "--resamples", "10", "--json", str(tmp_path / "e.json")]) == 0
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert evaluation["settings"]["checkpoint"] == str(run / "model") and evaluation["metrics"]["kl_per_token"]
    capsys.readouterr()

    assert main([*tune, *settings]) == 2
    assert "already holds a run; choose another --out" in capsys.readouterr().err
    assert main(["tune", "--resume", str(run)]) == 2
    assert "a DPO run cannot be resumed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--algo dpo learns from preference pairs: give --preferences FILE"),
        (["--preferences", "p.jsonl", "--dpo-beta", "0"], "--dpo-beta must be positive"),
        (["--preferences", "p.jsonl", "--dpo-epochs", "-1"], "--dpo-epochs 0 or more"),
        (["--preferences", "p.jsonl", "--key", "D major"], "--algo dpo tunes in the prior's key (C major)"),
        (["--preferences", "missing.jsonl"], "preferences file missing.jsonl not found"),
    ],
)
def test_bad_dpo_settings_fail_with_one_line(extra, message, tmp_path, tiny_prior_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--algo", "dpo", "--prior", tiny_prior_dir, "--out", "run", *extra]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_tune_config_maps_onto_dpo_config_with_the_same_defaults():
    # One default per fact: a TuneConfig left at its defaults trains as `reward dpo` does at its own.
    assert dpo_config(TuneConfig(preferences="p.jsonl", out="o", threads=1)) == DPOConfig(
        preferences="p.jsonl", out="o"
    )
    mapped = dpo_config(TuneConfig(preferences="p", dpo_loss="ipo", dpo_beta=0.3, dpo_epochs=3, seed=5, length=16))
    assert (mapped.loss, mapped.beta, mapped.epochs, mapped.seed, mapped.length) == ("ipo", 0.3, 3, 5, 16)
    by_bars = dpo_config(TuneConfig(preferences="p", bars=8))  # --bars (and --meter) give the length too
    assert (by_bars.length, by_bars.max_kl) == (128, 32.0)
    assert dpo_config(TuneConfig(preferences="p", bars=4, meter="6/8")).length == 48


def test_rl_runs_refuse_dpo_and_preferences(tmp_path, tiny_prior_dir):
    with pytest.raises(TuneError, match="runs through notetune.agents.dpo.tune_dpo"):
        TuneRun(TuneConfig(algo="dpo", preferences="p.jsonl", prior=tiny_prior_dir, out=str(tmp_path / "r")))
    with pytest.raises(TuneError, match="--preferences is read by --algo dpo only"):
        TuneRun(TuneConfig(algo="ppo", preferences="p.jsonl", prior=tiny_prior_dir, out=str(tmp_path / "r")))
