"""`notetune evaluate` and the evaluation library: numbers a user reads, with intervals and tests."""

import json
import math

import numpy as np
import pytest
from notetune.agents.evaluation import evaluate_source
from notetune.agents.sources import load_corpus_index, load_prior, load_source
from notetune.pretrained.corpus import load_corpus
from notetune.rewards.evaluation import METRICS, evaluate_tokens
from notetune.rewards.significance import p_value, two_proportion_p_value
from notetune.scripts.cli import main
from notetune.scripts.report_text import format_table


@pytest.fixture(scope="module")
def corpus_windows(tiny_corpus_path):
    return load_corpus(tiny_corpus_path).windows(32)


def test_every_interval_contains_its_estimate(tiny_prior_dir, tiny_corpus_path):
    source = load_source(tiny_prior_dir, num=300, seed=1)
    evaluation = evaluate_source(source, prior=load_prior(tiny_prior_dir), corpus=tiny_corpus_path, resamples=300)
    # a model with prior and corpus gets every metric (music_reward needs a reward set, form compliance a form;
    # the structure group adds the share of each detected form)
    named = {name for name in evaluation.metrics if not name.startswith("detected_form_")}
    assert named == set(METRICS) - {"music_reward", "returns_agree", "contrasts_differ", "form_followed"}
    assert {"detected_form_AB", "detected_form_AA"} & set(evaluation.metrics)
    for name, metric in evaluation.metrics.items():
        if math.isfinite(metric.value):
            assert metric.low - 1e-12 <= metric.value <= metric.high + 1e-12, name


def test_samples_copied_from_the_corpus_have_copy_rate_one_and_are_flagged(corpus_windows, tiny_corpus_path):
    index, _ = load_corpus_index(tiny_corpus_path)
    evaluation = evaluate_tokens(corpus_windows, "copies", corpus_index=index, resamples=200)
    assert evaluation.metrics["copy_rate_8gram"].value == 1.0
    assert evaluation.metrics["plagiarism_rate"].value > 0.9
    assert evaluation.metrics["longest_copied_span"].value >= 16


def test_a_model_is_judged_against_the_corpus(tiny_prior_dir, tiny_corpus_path):
    # The untrained tiny model plays near-uniform tokens: long phrases of the corpus are out of its reach.
    source = load_source(tiny_prior_dir, num=200)
    evaluation = evaluate_source(source, corpus=tiny_corpus_path, resamples=200)
    assert evaluation.metrics["copy_rate_8gram"].value < 0.05
    assert evaluation.metrics["plagiarism_rate"].value == 0.0


def test_identical_melodies_have_distinct_4gram_near_zero(corpus_windows):
    evaluation = evaluate_tokens(np.tile(corpus_windows[0], (300, 1)), "one tune", resamples=200)
    assert evaluation.metrics["distinct_4gram"].value <= 1 / 30  # at most 29 distinct among 30 · 29
    assert evaluation.metrics["duplicate_rate"].value == 1.0
    assert evaluation.metrics["mean_pairwise_similarity"].value == 1.0
    assert evaluation.settings["diversity_set_size"] == 30  # ten sets of 30


def test_kl_is_zero_for_the_prior_itself_and_positive_when_the_sampler_differs(tiny_prior_dir):
    prior = load_prior(tiny_prior_dir)
    itself = evaluate_source(load_source(tiny_prior_dir, num=200), prior=prior, corpus="none", resamples=100)
    assert itself.metrics["kl_per_token"].value == 0.0
    assert itself.metrics["log_prior_per_token"].value == pytest.approx(-math.log(38), abs=0.1)  # near uniform
    cooled = load_source(tiny_prior_dir, num=200, temperature=0.3)
    assert cooled.label.endswith("(T=0.3)")
    evaluation = evaluate_source(cooled, prior=prior, corpus="none", resamples=100)
    kl = evaluation.metrics["kl_per_token"]
    assert kl.low > 0.02  # a near-uniform model cooled to T = 0.3 has drifted measurably


def test_paper_token_order_reads_holds_as_rests(corpus_windows):
    ours = evaluate_tokens(corpus_windows, resamples=100).metrics["excessively_repeated"].value
    paper = evaluate_tokens(corpus_windows, resamples=100, paper_token_order=True)
    assert paper.metrics["excessively_repeated"].value > 2 * ours  # runs of holds become runs of rests
    assert paper.settings["paper_token_order"] is True


def test_significance_tests():
    assert two_proportion_p_value(50, 100, 50, 100) == 1.0
    assert two_proportion_p_value(10, 100, 50, 100) < 1e-8
    assert 0.05 < two_proportion_p_value(45, 100, 55, 100) < 0.2  # z ≈ 1.41, p ≈ 0.157
    rng = np.random.default_rng(0)
    low = evaluate_tokens(rng.integers(2, 20, (200, 32)), resamples=50)
    high = evaluate_tokens(rng.integers(20, 38, (200, 32)), resamples=50)
    assert p_value(low.metrics["pitch_range"], high.metrics["pitch_range"]) > 0.01  # same spread of ranges
    assert p_value(low.metrics["scale_consistency"], low.metrics["scale_consistency"]) == pytest.approx(1.0)
    assert p_value(low.metrics["hold_share"], low.metrics["hold_share"]) == 1.0
    assert p_value(low.metrics["pitch_class_entropy"], high.metrics["n_pitch_classes_used"]) < 1e-10


def test_sources_model_corpus_and_files(tmp_path, tiny_prior_dir, tiny_corpus_path):
    model = load_source(tiny_prior_dir, num=10, seed=3)
    again = load_source(tiny_prior_dir, num=10, seed=3)
    np.testing.assert_array_equal(model.tokens, again.tokens)  # same seed, same melodies
    assert model.kind == "model" and model.model_log_probs.shape == (10, 32)
    corpus = load_source(tiny_corpus_path, num=20, seed=0)
    assert corpus.kind == "corpus" and corpus.tokens.shape == (20, 32) and corpus.label == "corpus"
    np.savez(tmp_path / "samples.npz", tokens=model.tokens)
    samples = load_source(tmp_path / "samples.npz", num=4)
    assert samples.kind == "samples" and samples.label == tmp_path.name and samples.tokens.shape == (4, 32)
    (tmp_path / "stale.mid").write_bytes(b"")  # a folder from `notetune sample`: the npz wins over MIDI files
    np.testing.assert_array_equal(load_source(tmp_path).tokens, model.tokens)


def test_evaluate_command_prints_a_table_and_writes_json(tmp_path, tiny_prior_dir, tiny_corpus_path, capsys):
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            "--model",
            tiny_prior_dir,
            "--num",
            "120",
            "--prior",
            tiny_prior_dir,
            "--corpus",
            tiny_corpus_path,
            "--resamples",
            "200",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for text in ("copy_rate_8gram", "log_prior_per_token", "95% interval", "paper Note RNN", "63.3%"):
        assert text in printed
    data = json.loads(out.read_text())
    assert data["num_melodies"] == 120 and data["config"]["num"] == 120
    metric = data["metrics"]["copy_rate_8gram"]
    assert metric["ci95"][0] <= metric["value"] <= metric["ci95"][1] and metric["kind"] == "rate"
    assert set(data["table1"]) >= {"excessively_repeated", "distinct_melodies"}
    assert data["settings"]["prior"] and data["settings"]["corpus"]


def test_evaluate_command_on_the_corpus_and_on_samples(tmp_path, tiny_corpus_path, tiny_prior_dir, capsys):
    assert (
        main(
            [
                "evaluate",
                "--samples",
                tiny_corpus_path,
                "--prior",
                "none",
                "--corpus",
                "none",
                "--num",
                "0",
                "--resamples",
                "50",
                "--json",
                str(tmp_path / "corpus.json"),
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "corpus.json").read_text())
    assert data["settings"]["kind"] == "corpus" and data["num_melodies"] == len(load_corpus(tiny_corpus_path).windows())
    assert "log_prior_per_token" not in data["metrics"] and "copy_rate_8gram" not in data["metrics"]
    capsys.readouterr()
    assert main(["evaluate", "--model", tiny_prior_dir, "--samples", tiny_corpus_path]) == 2
    assert "either --model or --samples" in capsys.readouterr().err
    assert main(["evaluate", "--samples", str(tmp_path / "missing.npz")]) == 2
    assert "not found" in capsys.readouterr().err


def test_text_table_lines_up_columns(corpus_windows):
    a = evaluate_tokens(corpus_windows, "corpus", resamples=50)
    b = evaluate_tokens(np.tile(corpus_windows[0], (50, 1)), "one tune", resamples=50)
    table = format_table([a, b]).splitlines()
    assert table[0].split()[:3] == ["metric", "corpus", "95%"]
    rows = [line for line in table if line.startswith("  ")]
    assert len({len(line) for line in rows}) == 1  # every metric row has the header's width
    assert any(line.strip().startswith("duplicate_rate") and "100.0%" in line for line in rows)
    distinct = next(line.split() for line in rows if line.strip().startswith("distinct_melodies"))  # Table 1's
    assert distinct[1:] == [f"{100 * a.table1['distinct_melodies']:.2f}%", "(whole", "set)", "2.00%", "(whole", "set)"]


def test_values_are_printed_with_about_three_significant_digits(corpus_windows):
    from notetune.scripts.report_text import format_interval, format_value

    assert format_value("not_in_key", 0.00085) == "0.085%" and format_value("not_in_key", 0.25) == "25.0%"
    assert format_value("autocorrelation_lag1", -0.4) == "-0.400" and format_value("pitch_range", 9.912) == "9.91"
    assert format_value("leaps_resolved", float("nan")) == "n/a"
    metric = evaluate_tokens(corpus_windows, resamples=50).metrics["rest_share"]
    low, high = format_interval(metric).strip("[]").split(", ")
    assert (
        len(low.split(".")[1]) == len(high.split(".")[1]) == len(format_value("rest_share", metric.value).split(".")[1])
    )
