"""Issue 12, section 7, command side: reward figures in evaluate/compare, one-line errors for what the user
typed, and tracebacks kept for bugs."""

import json

import pytest
from notetune.pretrained.checkpoint import load_checkpoint, save_checkpoint
from notetune.scripts.cli import main


def evaluate_json(tmp_path, model, *extra):
    out = tmp_path / "eval.json"
    code = main(
        ["evaluate", "--model", model, "--num", "40", "--prior", model, "--corpus", "none"]
        + ["--resamples", "20", "--json", str(out), *extra]
    )
    assert code == 0
    return json.loads(out.read_text())


def test_evaluate_reports_the_reward_it_is_given(tmp_path, tiny_prior_dir, capsys):
    data = evaluate_json(tmp_path, tiny_prior_dir, "--reward", "notetune,surprise_band")
    metrics = data["metrics"]
    assert {"music_reward", "reward_surprise_band", "reward_key", "reward_tonic_start"} <= set(metrics)
    assert 0 <= metrics["reward_surprise_band"]["value"] <= 32
    assert data["config"]["reward"] == "notetune,surprise_band"
    assert "reward_surprise_band" in capsys.readouterr().out


def test_evaluate_scores_with_notetune_by_default_and_none_leaves_rewards_out(tmp_path, tiny_prior_dir):
    default = evaluate_json(tmp_path, tiny_prior_dir)["metrics"]
    assert "music_reward" in default and "reward_key" in default and "reward_surprise_band" not in default
    none = evaluate_json(tmp_path, tiny_prior_dir, "--reward", "none")["metrics"]
    assert not any(name == "music_reward" or name.startswith("reward_") for name in none)


def test_a_tuned_model_is_scored_with_its_own_reward_spec_and_weights(tmp_path, tiny_prior_dir):
    model, _ = load_checkpoint(tiny_prior_dir)
    tuned = tmp_path / "tuned"
    tuned_section = {"reward": ["notetune", "surprise_band"], "weights": {"surprise_band": 0.0}}
    save_checkpoint(model, tuned, extra={"key": "C major", "tuned": tuned_section})
    own = evaluate_json(tmp_path, str(tuned))["metrics"]
    assert "reward_surprise_band" in own
    # The weight 0 is the run's: surprise_band does not count toward the music reward.
    plain = evaluate_json(tmp_path, str(tuned), "--reward", "notetune")["metrics"]
    assert own["music_reward"]["value"] == pytest.approx(plain["music_reward"]["value"])
    assert "reward_surprise_band" not in plain


def test_compare_reports_the_reward_for_every_set(tmp_path, tiny_prior_dir, tiny_corpus_path):
    out = tmp_path / "report"
    code = main(
        ["compare", tiny_prior_dir, tiny_corpus_path, "--out", str(out), "--num", "40", "--prior", tiny_prior_dir]
        + ["--corpus", tiny_corpus_path, "--reward", "notetune,surprise_band,corpus_copy", "--samples-shown", "1"]
        + ["--no-audio", "--resamples", "20"]
    )
    assert code == 0
    evaluations = json.loads((out / "metrics.json").read_text())["evaluations"]
    assert len(evaluations) == 2
    for evaluation in evaluations:
        assert {"music_reward", "reward_corpus_copy"} <= set(evaluation["metrics"])
    # The corpus has no prior log-probabilities of its own only when --prior is none; here both are scored.
    assert all("reward_surprise_band" in e["metrics"] for e in evaluations)
    # Windows cut from the corpus copy it on every 8-note phrase: the corpus_copy term is negative.
    assert evaluations[1]["metrics"]["reward_corpus_copy"]["value"] < 0


def test_surprise_band_without_a_prior_is_one_line(tmp_path, tiny_prior_dir, capsys):
    code = main(
        ["evaluate", "--model", tiny_prior_dir, "--num", "10", "--prior", "none", "--corpus", "none"]
        + ["--reward", "surprise_band", "--resamples", "5"]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "surprise_band" in err and "--prior" in err
