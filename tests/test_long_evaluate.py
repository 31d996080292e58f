"""Long-form evaluation: structure metrics, Table 1 on bar-aligned windows, and the report of 128-step pieces
(bar self-similarity per set, long piano rolls that scroll, audio) checked in headless Chromium."""

import json
import re

import numpy as np
import pytest
import test_report as report_check
from browser import chromium_binary
from notetune.pretrained.form import Form
from notetune.rewards.evaluation import evaluate_tokens
from notetune.rewards.statistics import table1_statistics
from notetune.rewards.structure import windowed_table1_counts
from notetune.scripts.cli import main

C, D, E, F, G = 14, 16, 18, 19, 21  # C4 D4 E4 F4 G4


def play(*notes):
    """Tokens of (pitch token, steps) notes: an onset, then holds."""
    return np.concatenate([[pitch] + [1] * (steps - 1) for pitch, steps in notes]).astype(np.int64)


def aaba_piece():
    a = np.concatenate([play((C, 4), (D, 4), (E, 4), (G, 4)), play((E, 8), (D, 4), (G, 4))])
    b = np.concatenate([play((F, 2), (F, 2), (E, 4), (D, 8)), play((G, 2), (F, 2), (E, 2), (D, 2), (C, 8))])
    ending = np.concatenate([play((C, 4), (D, 4), (E, 4), (G, 4)), play((E, 8), (D, 4), (C, 4))])
    return np.concatenate([a, a, b, ending])


def test_long_pieces_get_structure_metrics_and_table1_on_two_bar_windows():
    rng = np.random.default_rng(0)
    pieces = np.stack([aaba_piece()] * 10 + [rng.integers(0, 38, 128) for _ in range(10)])
    evaluation = evaluate_tokens(pieces, resamples=0, form=Form.parse("AABA").layout(128))
    figures = evaluation.figures()
    assert evaluation.settings["table1_windows"].startswith("bar-aligned 2-bar windows of 32 steps (4/4), 4 per piece")
    windows = pieces.reshape(-1, 32)
    for name in ("starts_with_tonic", "not_in_key", "in_repeated_motif", "hold_share"):
        assert figures[name] == pytest.approx(table1_statistics(windows)[name]), name
    numerator, denominator = windowed_table1_counts(pieces)["starts_with_tonic"]
    assert denominator.tolist() == [4.0] * 20 and numerator[0] == 3  # the AABA piece: A, A and ending start on C
    assert figures["distinct_melodies"] == pytest.approx(11 / 20)
    assert figures["form_followed"] == pytest.approx(0.5) and figures["ends_on_tonic"] >= 0.5
    assert figures["detected_form_AABA"] == pytest.approx(0.5)
    assert figures["bar_repeated_exact"] > 0.2  # the two A phrases and the ending's first bar return
    matrix = np.asarray(evaluation.structure["bar_similarity"])
    assert matrix.shape == (8, 8) and np.allclose(np.diag(matrix), 1.0) and matrix[2, 0] > matrix[4, 0]
    short = evaluate_tokens(pieces[:, :32], resamples=0)
    assert "table1_windows" not in short.settings and short.figures()["starts_with_tonic"] == pytest.approx(0.5)
    assert "bar_repeated_exact" in short.metrics and "form_followed" not in short.metrics
    assert "bar_repeated_exact" not in evaluate_tokens(pieces[:, :16], resamples=0).metrics  # one bar only


def test_evaluate_command_reports_structure_of_a_strict_form_in_json(tmp_path, tiny_prior_dir, capsys):
    out = tmp_path / "metrics.json"
    args = ["evaluate", "--model", tiny_prior_dir, "--num", "60", "--bars", "8", "--form", "AABA", "--form-strict"]
    assert main([*args, "--prior", tiny_prior_dir, "--corpus", "none", "--resamples", "20", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Structure of long pieces" in printed and "Table 1 of these long pieces: on bar-aligned" in printed
    data = json.loads(out.read_text())
    assert data["length"] == 128 and data["settings"]["form"] == "AABA"
    assert data["metrics"]["returns_agree"]["value"] == 1.0  # strict: every returning A is a copy
    assert data["metrics"]["kl_per_composition"]["value"] == pytest.approx(0.0, abs=1e-6)  # the prior, masked alike
    assert data["structure"]["detected_forms"]["AABA"] > 0.5 and len(data["structure"]["bar_similarity"]) == 8


ROLL_CHECK = """      rolls: Array.prototype.map.call(document.querySelectorAll("figure.sample .roll"), function (r) {
        return {scrollWidth: r.scrollWidth, clientWidth: r.clientWidth}; }),
      metricRows:"""


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install chromium)")
def test_report_of_128_step_pieces_shows_bar_similarity_and_scrolling_rolls_in_chromium(
    tmp_path, tiny_prior_dir, tiny_corpus_path, monkeypatch
):
    strict = tmp_path / "strict"
    command = ["sample", "--model", tiny_prior_dir, "--length", "128", "--form", "AABA", "--form-strict"]
    assert main([*command, "--num", "40", "--out", str(strict)]) == 0
    out = tmp_path / "report"
    args = ["compare", tiny_prior_dir, str(strict / "samples.npz"), "--out", str(out), "--length", "128"]
    args += ["--num", "40", "--labels", "prior", "--labels", "strict AABA", "--prior", tiny_prior_dir]
    assert main([*args, "--corpus", tiny_corpus_path, "--samples-shown", "2", "--resamples", "20"]) == 0
    page = (out / "index.html").read_text()
    assert len(re.findall(r'<img src="plots/bar_similarity_\d-[a-z-]+\.png"', page)) == 2
    assert page.count('class="long-roll"') == 4 and 'id="table1-windows"' in page
    monkeypatch.setattr(
        report_check, "CHECK_SCRIPT", report_check.CHECK_SCRIPT.replace("      metricRows:", ROLL_CHECK)
    )
    result, console = report_check.check_in_browser(out / "index.html")
    assert result["errors"] == [] and console == []
    assert len(result["images"]) == 3 + 2 + 4
    for image in result["images"]:
        assert image["complete"] and image["width"] > 100, image
    rolls = [image for image in result["images"] if "/sample_" in image["src"]]
    assert all(image["width"] > 1000 for image in rolls)  # 128 steps: four times a 32-step roll
    assert len(result["rolls"]) == 4 and all(r["scrollWidth"] > r["clientWidth"] for r in result["rolls"])
    assert len(result["audios"]) == 4
    for audio in result["audios"]:
        assert audio["error"] is None and audio["readyState"] >= 1 and audio["duration"] >= 16.0, audio


def test_melodies_that_break_a_strict_form_are_scored_by_the_unmasked_prior(tmp_path, tiny_prior_dir, tiny_corpus_path):
    out = tmp_path / "corpus.json"
    args = ["evaluate", "--samples", tiny_corpus_path, "--num", "30", "--length", "64", "--form", "AABA"]
    assert main([*args, "--form-strict", "--prior", tiny_prior_dir, "--corpus", "none", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert -5.0 < data["metrics"]["log_prior_per_token"]["value"] < 0.0  # finite: no copied step is forced
    assert data["metrics"]["returns_agree"]["value"] < 1.0
