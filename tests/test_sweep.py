"""Sweeps: a tiny local sweep on Ray Tune leaves ordinary run directories, a summary and a Pareto plot; a
failing trial is reported, not fatal; re-running resumes without re-running finished trials; bad sweep files
and a missing Ray fail with one clear line before anything starts."""

import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

import pytest
import tomllib
from notetune.agents.sweep import pareto_front, targets_frontier
from notetune.agents.sweep_spec import expand_trials, parse_sweep_spec
from notetune.scripts.cli import main

BASE = """
[base]
prior = "{prior}"
corpus = "{corpus}"
length = 8
num_envs = 32
steps = 1024
max_minutes = 0
eval_every = 512
eval_size = 64
confirm_size = 128
checkpoint_every = 512
patience = 0
kl_coef = 0.05
kl_target = 0.0
learning_rate = 3e-3
# loose selection bounds: the trained policy, not the untuned one, is what each trial reports
max_kl = 100.0
min_distinct_melodies = 0.0
min_distinct_4gram_ratio = 0.0
min_hold_ratio = 0.0
min_rest_ratio = 0.0
max_log_prior_drop = 100.0
"""
# Three trials, one of them with a misspelt reward: it must fail alone, with the reward's own message.
GRID = """
[grid]
reward = [["notetune"], ["notetune", "key=8"], ["tonik"]]
"""
GOOD, STRONG_KEY, TYPO = "reward=notetune", "reward=notetune+key=8", "reward=tonik"


def write_sweep(directory: Path, prior: str, corpus: str, extra: str = GRID, base: str = BASE) -> Path:
    path = directory / "sweep.toml"
    path.write_text(base.format(prior=prior, corpus=corpus) + extra)
    return path


def run_command(argv: list[str]) -> tuple[int, str, float]:
    """``notetune ARGV`` → (exit code, stdout, seconds); Ray's own progress output lands in stdout too."""
    output = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(output):
        code = main(argv)
    return code, output.getvalue(), time.monotonic() - started


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module (starting Ray takes seconds); the sweeps reuse it."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[sweep]'")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory, tiny_prior_dir, tiny_corpus_path):
    directory = tmp_path_factory.mktemp("sweep")
    config = write_sweep(directory, tiny_prior_dir, tiny_corpus_path)
    out = directory / "out"
    code, stdout, seconds = run_command(["sweep", "--config", str(config), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    return {
        "config": config,
        "out": out,
        "code": code,
        "stdout": stdout,
        "seconds": seconds,
        "rows": {row["trial"]: row for row in summary["trials"]},
        "summary": summary,
    }


def test_a_tiny_sweep_leaves_run_directories_a_summary_and_a_pareto_plot(sweep):
    out, rows = sweep["out"], sweep["rows"]
    assert list(rows) == [GOOD, STRONG_KEY, TYPO]
    for name in (GOOD, STRONG_KEY):
        row = rows[name]
        assert row["status"] == "finished" and row["steps"] == 1024
        trial = out / "trials" / name
        assert (trial / "run.json").is_file() and (trial / "model" / "model.safetensors").is_file()
        config = json.loads((trial / "config.json").read_text())
        assert config["out"] == str(trial) and config["threads"] == 1 and config["progress"] is False
        record = json.loads((trial / "run.json").read_text())
        assert row["metrics"]["music_reward"] == pytest.approx(record["final_metrics"]["music_reward"])
        assert row["metrics"]["log_prior_per_token"] < 0 and 0 <= row["metrics"]["starts_with_tonic"] <= 1
        assert "key" in row["reward_terms"] and "motif" in row["reward_terms"]
    assert json.loads((out / "trials" / STRONG_KEY / "config.json").read_text())["reward"] == [
        "notetune",
        "key=8",
    ]
    assert sweep["summary"]["swept"] == ["reward"] and sweep["summary"]["metric"] == "music_reward"

    # Pareto flags follow the definition; the best trial has the most music reward.
    finished = [rows[GOOD], rows[STRONG_KEY]]
    for row in finished:
        x, y = row["metrics"]["log_prior_per_token"], row["metrics"]["music_reward"]
        dominated = any(
            o["metrics"]["log_prior_per_token"] >= x
            and o["metrics"]["music_reward"] >= y
            and (o["metrics"]["log_prior_per_token"] > x or o["metrics"]["music_reward"] > y)
            for o in finished
        )
        assert row["pareto"] == (not dominated)
    best = max(finished, key=lambda row: row["metrics"]["music_reward"])
    assert [row["trial"] for row in rows.values() if row["best"]] == [best["trial"]]

    plot = out / "pareto.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000

    # Every trial has the default novelty targets: the frontier of targets met against KL is drawn.
    for row in finished:
        record = json.loads((out / "trials" / row["trial"] / "run.json").read_text())
        assert row["targets_total"] == len(record["targets"]["targets"]) == 2
        assert row["targets_met"] == sum(target["met"] for target in record["targets"]["targets"])
    assert rows[TYPO]["targets_met"] is None and not rows[TYPO]["frontier"]
    assert any(row["frontier"] for row in finished)
    frontier = out / "frontier.png"
    assert frontier.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and frontier.stat().st_size > 10_000
    markdown = (out / "summary.md").read_text()
    assert f"| {best['trial']} ★ | finished |" in markdown
    assert "log p/note" in markdown and "r:key" in markdown and "targets met" in markdown
    assert f"{best['metrics']['music_reward']:.3f}" in markdown

    # The printed table and the closing line.
    assert "2 of 3 trials finished" in sweep["stdout"]
    assert f"{best['metrics']['music_reward']:.3f}" in sweep["stdout"]
    print(f"tiny 3-trial sweep: {sweep['seconds']:.1f} s")


def test_a_failing_trial_is_reported_not_fatal(sweep):
    row = sweep["rows"][TYPO]
    assert row["status"] == "failed" and row["metrics"] == {}
    assert row["error"].startswith("UnknownRewardError: unknown reward 'tonik'; did you mean 'tonic'?")
    assert "UnknownRewardError" in (sweep["out"] / "trials" / TYPO / "error.txt").read_text()
    assert "did you mean 'tonic'?" in (sweep["out"] / "summary.md").read_text()
    assert sweep["code"] == 1  # the other trials finished, but the sweep is not complete
    assert "1 trial(s) did not finish" in sweep["stdout"]


def test_rerunning_the_sweep_resumes_it_without_rerunning_finished_trials(sweep, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(sweep["out"], out)
    kept = out / "trials" / GOOD / "run.json"
    kept_before = (kept.read_bytes(), kept.stat().st_mtime_ns)
    # Simulate a trial killed half way: no run.json and no checkpoint after step 512.
    killed = out / "trials" / STRONG_KEY
    (killed / "run.json").unlink()
    shutil.rmtree(killed / "checkpoints" / "step_000000001024")

    code, stdout, _ = run_command(["sweep", "--config", str(sweep["config"]), "--out", str(out)])
    assert "1 finished earlier (kept), 1 to resume, 1 to retry, 0 new" in stdout
    assert (kept.read_bytes(), kept.stat().st_mtime_ns) == kept_before
    record = json.loads((killed / "run.json").read_text())
    assert record["steps"] == 1024 and record["resumed_from"].endswith("step_000000000512")
    rows = {row["trial"]: row for row in json.loads((out / "summary.json").read_text())["trials"]}
    assert [rows[n]["status"] for n in (GOOD, STRONG_KEY, TYPO)] == ["finished", "finished", "failed"]
    assert code == 1


def test_a_changed_sweep_file_does_not_resume_into_old_trial_directories(sweep, tmp_path, capsys):
    changed = tmp_path / "sweep.toml"
    changed.write_text(sweep["config"].read_text().replace("steps = 1024", "steps = 2048"))
    assert main(["sweep", "--config", str(changed), "--out", str(sweep["out"])]) == 2
    error = capsys.readouterr().err
    assert "holds a run with other settings (steps: 1024 → 2048)" in error and "another --out" in error


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[grid]\nkl_coeff = [0.1, 1.0]\n",
            "[grid] unknown TuneConfig field 'kl_coeff'; did you mean 'kl_coef'?",
        ),
        ("[random]\nlearnig_rate = { low = 1e-5, high = 1e-3 }\n", "did you mean 'learning_rate'?"),
        ("kl_coef = 1.0\n", "unknown key 'kl_coef'; TuneConfig fields go in [base], [grid] or [random]"),
        ("metrc = 'music_reward'\n", "unknown key 'metrc'; did you mean 'metric'?"),
        ("[grid]\nkl_coef = 0.5\n", "[grid] kl_coef must be a non-empty list of values"),
        ("[grid]\nkl_coef = ['big', 1.0]\n", "config field 'kl_coef' must be a number, got str 'big'"),
        ("[grid]\n\"weights.key\" = ['x']\n", "config field 'weights.key' must be a number"),
        (
            '[grid]\n"seed.x" = [1]\n',
            "only weights.<reward>, targets.<statistic>, min_stats.<statistic>, max_stats.<statistic> take a "
            "dotted name",
        ),
        ("[random]\nkl_coef = { low = 2.0, high = 0.5 }\n", "[random] kl_coef needs numbers low < high"),
        ("[random]\nkl_coef = { low = 0.0, high = 1.0, log = true }\n", "a log range needs low > 0"),
        ("[random]\nalgo = { low = 0, high = 1 }\n", "[random] algo is not a number; give a list of choices"),
        (
            "num_samples = 3\n[grid]\nseed = [0, 1]\n",
            "there is no [random] table; to repeat the grid over seeds",
        ),
        ("[base]\nseed = 1\n[grid]\nseed = [0, 1]\n", "'seed' is in [base] and is swept"),
        (
            "[base.weights]\nkey = 2.0\n[grid.weights]\nkey = [1.0, 3.0]\n",
            "'weights.key' is in [base] and is swept",
        ),
        ("[base]\nout = 'runs/x'\n", "[base] may not set 'out'"),
        ("[grid]\nseed = [1, 1]\n", "several trials would share the directory 'seed=1'"),
        ("metric = 'music_rewards'\n", "unknown metric 'music_rewards'; did you mean 'music_reward'?"),
        ("mode = 'maximum'\n", "mode must be 'max' or 'min'"),
    ],
)
def test_bad_sweep_files_fail_with_one_line_before_anything_starts(toml, message, tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(toml)
    assert main(["sweep", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.startswith("notetune sweep: error: ") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_grid_and_random_draws_expand_to_named_reproducible_trials():
    data = {
        "base": {"steps": 1000},
        "grid": {"seed": [0, 1], "weights": {"key": [1.0, 4.0]}},
        "random": {
            "kl_coef": {"low": 0.01, "high": 10.0, "log": True},
            "n_epochs": {"low": 1, "high": 8},
            "algo": ["ppo", "a2c"],
        },
        "num_samples": 3,
        "sample_seed": 7,
    }
    trials = expand_trials(parse_sweep_spec(data))
    assert len(trials) == 2 * 2 * 3
    first = trials[0]
    assert first.name.startswith("sample=0,seed=0,weights.key=1,kl_coef=")
    assert first.config["weights"] == {"key": 1.0} and first.config["steps"] == 1000 and first.config["threads"] == 1
    for trial in trials:
        assert 0.01 <= trial.params["kl_coef"] <= 10.0 and trial.config["kl_coef"] == trial.params["kl_coef"]
        assert isinstance(trial.config["n_epochs"], int) and 1 <= trial.config["n_epochs"] <= 8
        assert trial.config["algo"] in ("ppo", "a2c") and trial.params["algo"] in trial.name
    # Draws are reproducible, shared by every grid point of a sample, and kept when num_samples grows.
    assert expand_trials(parse_sweep_spec(data)) == trials
    assert len({t.params["kl_coef"] for t in trials[:4]}) == 1
    more = expand_trials(parse_sweep_spec({**data, "num_samples": 4}))
    assert [t.name for t in more[:12]] == [t.name for t in trials]


def test_pareto_front_keeps_the_trials_nothing_beats_on_both_axes():
    def row(x, y):
        return {"metrics": {"log_prior_per_token": x, "music_reward": y}}

    rows = [row(-3.0, 1.0), row(-2.0, 0.5), row(-3.5, 0.8), row(-2.0, 0.5), row(-1.0, -1.0), {"metrics": {}}]
    assert pareto_front(rows) == [0, 1, 3, 4]  # (-3.5, 0.8) is beaten by (-3.0, 1.0); ties both stay


def test_the_targets_frontier_keeps_trials_no_other_meets_as_many_targets_with_less_kl(tmp_path):
    from notetune.scripts.sweep_report import write_frontier_plot

    def row(met, kl):
        return {"trial": f"t{met}-{kl}", "targets_met": met, "targets_total": 3, "metrics": {"kl_per_composition": kl}}

    rows = [row(3, 9.0), row(2, 4.0), row(2, 5.0), row(0, 0.5), row(3, 12.0)]
    rows.append({"trial": "no targets", "targets_met": None, "targets_total": None, "metrics": {}})
    assert targets_frontier(rows) == [0, 1, 3]  # 2 targets at KL 5 costs more than at KL 4; all 3 at 12 > 9
    for index, item in enumerate(rows):
        item["frontier"] = index in (0, 1, 3)
    plot = write_frontier_plot(rows, tmp_path / "frontier.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys, tiny_prior_dir, tiny_corpus_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    config = write_sweep(tmp_path, tiny_prior_dir, tiny_corpus_path, extra="[grid]\nseed = [0, 1]\n")
    assert main(["sweep", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.splitlines() == [
        "notetune sweep: error: Ray is not installed; sweeps need the sweep extra: pip install -e '.[sweep]'"
    ]
    assert not (tmp_path / "out").exists()


def test_an_unreachable_cluster_is_one_line(tmp_path, monkeypatch, capsys, tiny_prior_dir, tiny_corpus_path):
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[sweep]'")

    def refuse(**kwargs):
        raise ConnectionError("ray client connection timeout")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    config = write_sweep(tmp_path, tiny_prior_dir, tiny_corpus_path, extra="[grid]\nseed = [0, 1]\n")
    assert main(["sweep", "--config", str(config), "--address", "ray://head:10001", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "could not connect to the Ray cluster at ray://head:10001: ray client connection timeout" in error


def test_the_shipped_example_sweep_file_expands():
    example = Path(__file__).parents[1] / "scripts" / "sweep_example.toml"
    trials = expand_trials(parse_sweep_spec(tomllib.loads(example.read_text())))
    assert len(trials) == 3 * 2 * 2 * 4
    assert {t.config["kl_coef"] for t in trials} == {0.5, 2.0, 5.0} and trials[0].config["weights"] == {"key": 1.0}


def test_compare_gets_the_summary_table_and_pareto_plot_as_an_html_section(sweep, tmp_path):
    from notetune.scripts.sweep_report import sweep_html_section

    fragment = sweep_html_section(sweep["out"], tmp_path / "report", label="reward sweep")
    best = next(name for name, row in sweep["rows"].items() if row["best"])
    assert "<h3>Sweep reward sweep</h3>" in fragment and f"<td>{best} ★</td>" in fragment
    assert "did you mean &#x27;tonic&#x27;?" in fragment
    assert 'src="plots/pareto-0.png"' in fragment and (tmp_path / "report" / "plots" / "pareto-0.png").is_file()


def test_notetune_compare_given_a_sweep_directory_shows_it_and_its_best_trial(sweep, tmp_path, tiny_prior_dir):
    from notetune.scripts.cli import main

    out = tmp_path / "report"
    argv = [
        "compare",
        tiny_prior_dir,
        str(sweep["out"]),
        "--out",
        str(out),
        "--num",
        "60",
        "--no-audio",
        "--samples-shown",
        "1",
        "--corpus",
        "none",
        "--prior",
        tiny_prior_dir,
        "--resamples",
        "20",
    ]
    assert main(argv) == 0
    page = (out / "index.html").read_text()
    best = next(name for name, row in sweep["rows"].items() if row["best"])
    assert 'src="plots/pareto-0.png"' in page and (out / "plots" / "pareto-0.png").is_file()
    assert f"best trial {best}" in page  # the best trial's model is a column of the comparison
