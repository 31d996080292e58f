"""`notetune compare RUN_DIR`: each target's trajectory and the KL over training, drawn from run.json and shown
in the report, checked on disk and in headless Chromium."""

import json

import pytest
from browser import chromium_binary
from notetune.agents.run import TuneRun
from notetune.scripts.cli import main
from test_report import check_in_browser
from tuning import tiny_config


@pytest.fixture(scope="module")
def run_report(tmp_path_factory, tiny_prior_dir, tiny_corpus_path):
    root = tmp_path_factory.mktemp("run_report")
    run_dir = root / "holds"
    TuneRun(tiny_config(run_dir, tiny_prior_dir, tiny_corpus_path, target=["hold_share>=0.3"], steps=4096)).run()
    out = root / "report"
    args = ["compare", str(run_dir), "--out", str(out), "--num", "40", "--prior", tiny_prior_dir]
    assert main([*args, "--corpus", tiny_corpus_path, "--samples-shown", "1", "--resamples", "0", "--no-audio"]) == 0
    return run_dir, out


def test_the_report_draws_each_target_and_the_kl_of_a_run(run_report):
    run_dir, out = run_report
    record = json.loads((run_dir / "run.json").read_text())
    page = (out / "index.html").read_text()
    assert "Targets over training: holds" in page
    assert (out / "plots" / "run-holds.png").stat().st_size > 5000
    for row in record["targets"]["targets"]:  # hold share, then the default novelty targets
        assert f"<td>{row['target']}</td>" in page.replace("&lt;", "<").replace("&gt;", ">")
    assert page.count("✓") + page.count("✗ missed") == len(record["targets"]["targets"])


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium binary (apt-get install chromium)")
def test_the_run_section_loads_in_headless_chromium(run_report):
    _, out = run_report
    result, console = check_in_browser(out / "index.html")
    assert result["errors"] == [] and console == []
    (trajectory,) = [image for image in result["images"] if image["src"] == "plots/run-holds.png"]
    assert trajectory["complete"] and trajectory["width"] > 400
