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
    data = evaluate_json(tmp_path, str(tuned))
    own = data["metrics"]
    assert "reward_surprise_band" in own
    assert data["settings"]["reward"] == {"spec": ["notetune", "surprise_band"], "weights": {"surprise_band": 0.0}}
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


def one_line_error(capsys, argv, *expected):
    """Run the command; it must fail with exit 2 and one line naming each of ``expected``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    return err


def test_sample_temperature_zero_and_a_bad_reward_weight_are_one_line(tmp_path, tiny_prior_dir, capsys):
    one_line_error(
        capsys, ["sample", "--model", tiny_prior_dir, "--temperature", "0", "--out", str(tmp_path)], "--temperature"
    )
    one_line_error(
        capsys,
        ["tune", "--prior", tiny_prior_dir, "--reward", "notetune,key=abc", "--out", str(tmp_path / "run")],
        "--reward",
        "'abc'",
        "NAME=WEIGHT",
    )
    assert not (tmp_path / "run").exists()


BAD_INPUTS = [
    (["sample", "--model", "{prior}", "--key", "H major"], "cannot read key 'H major'"),
    (["sample", "--model", "{prior}", "--constraint", "pitches=C,D,Q"], "cannot read pitch 'Q'"),
    (["sample", "--model", "{prior}", "--constraint", "foo"], "cannot read constraint 'foo'"),
    (["sample", "--model", "{prior}", "--format", "mp3"], "unknown format 'mp3'"),
    (["sample", "--model", "{prior}", "--primer", "{tmp}/missing.mid"], "not found"),
    (["sample", "--config", "{tmp}/bad.toml"], "unknown field 'nmu' (did you mean 'num'?)"),
    (["evaluate", "--samples", "{tmp}/bad.npz"], "is not a readable samples file"),
    (["evaluate", "--model", "{tmp}/nope"], "model {tmp}/nope not found"),
    (["evaluate", "--model", "{prior}", "--length", "4", "--corpus", "none"], "--length must be at least 8"),
    (["evaluate", "--model", "{prior}", "--num", "10", "--reward", "tonik", "--corpus", "none"], "did you mean"),
    (["evaluate", "--model", "{prior}", "--num", "10", "--reward", "corpus_copy", "--corpus", "none"], "--corpus"),
    (["compare", "{prior}", "{tmp}/bad.npz", "--num", "10", "--out", "{tmp}/r"], "is not a readable samples file"),
    (["compare", "{prior}", "--num", "0", "--out", "{tmp}/r"], "--num must be at least 1"),
    (["listen", "export", "{prior}", "{tmp}/bad.npz", "--out", "{tmp}/l"], "is not a readable samples file"),
    (["listen", "score", "{listening}", "{tmp}/missing.json"], "answer file {tmp}/missing.json not found"),
    (["listen", "score", "{listening}", "{tmp}/bad.npz"], "is not an answer file (not JSON"),
    (["listen", "score", "{listening}", "{tmp}/bad.toml"], "is not an answer file (not JSON"),
    (["sample", "--model", "{prior}", "--out", "{tmp}/bad.toml/out"], "cannot use {tmp}/bad.toml/out"),
    (["tune", "--prior", "{prior}", "--steps", "0", "--out", "{tmp}/t"], "--steps"),
    (["tune", "--prior", "{prior}", "--weights", "nokey=3", "--out", "{tmp}/t"], "did you mean 'key'"),
    (["tune", "--prior", "{prior}", "--weights", "key=abc", "--out", "{tmp}/t"], "--weights key=abc"),
    (["pretrain", "--corpus", "{corpus}", "--max-epochs", "0", "--out", "{tmp}/p"], "--max-epochs"),
    (["pretrain", "--corpus", "{corpus}", "--hidden-size", "0", "--out", "{tmp}/p"], "--hidden-size"),
    (["pretrain", "--corpus", "{corpus}", "--dropout", "3", "--out", "{tmp}/p"], "--dropout"),
    (["pretrain", "--corpus", "{corpus}", "--validation-fraction", "2", "--out", "{tmp}/p"], "--validation-fraction"),
    (["pretrain", "--corpus", "{corpus}", "--batch-size", "0", "--out", "{tmp}/p"], "--batch-size"),
    (["corpus", "build", "--no-music21", "--midi", "{tmp}", "--min-pitch", "90", "--max-pitch", "10"], "--min-pitch"),
]


@pytest.mark.parametrize("argv, expected", BAD_INPUTS, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD_INPUTS)])
def test_bad_input_to_any_command_is_one_line(
    argv, expected, tmp_path, tiny_prior_dir, tiny_corpus_path, listening_test, capsys
):
    (tmp_path / "bad.toml").write_text("nmu = 3\n")
    (tmp_path / "bad.npz").write_text("not an npz file\n")
    names = {"prior": tiny_prior_dir, "tmp": str(tmp_path), "corpus": tiny_corpus_path, "listening": listening_test}
    one_line_error(capsys, [part.format(**names) for part in argv], expected.format(**names))


def test_pretrain_without_a_time_limit_trains_for_its_epochs(tmp_path, tiny_corpus_path):
    code = main(
        ["pretrain", "--corpus", tiny_corpus_path, "--out", str(tmp_path / "p"), "--max-minutes", "0"]
        + ["--max-epochs", "1", "--embedding-dim", "4", "--hidden-size", "8", "--no-progress", "--no-markov-baseline"]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["steps"] >= 1 and metrics["history"]


def test_a_bug_in_evaluate_or_compare_keeps_its_traceback(tmp_path, tiny_prior_dir, monkeypatch, capsys):
    import notetune.scripts.cmd_compare as cmd_compare
    import notetune.scripts.cmd_evaluate as cmd_evaluate

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's input")

    for module in (cmd_evaluate, cmd_compare):
        monkeypatch.setattr(module, "evaluate_source", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["evaluate", "--model", tiny_prior_dir, "--num", "10", "--corpus", "none", "--reward", "none"])
    with pytest.raises(ValueError, match="a bug"):
        main(["compare", tiny_prior_dir, "--num", "10", "--corpus", "none", "--out", str(tmp_path / "r")])
    capsys.readouterr()
    # ...while bad input to the same commands is still one line.
    one_line_error(capsys, ["evaluate", "--model", tiny_prior_dir, "--key", "H major"], "cannot read key")
    one_line_error(capsys, ["compare", tiny_prior_dir, "--key", "H major", "--out", str(tmp_path / "r")], "key")
