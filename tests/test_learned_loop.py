"""The preference loop without people, end to end on a tiny budget: a simulated listener answers pairs of the
prior's melodies, DPO tunes on them, and the listener then prefers the tuned model over the prior; a tuning
run watched by a judge reports its preference at every evaluation, and the report draws the overoptimisation curve."""

import json

import numpy as np
from notetune.agents.dpo import DPOConfig, train_dpo
from notetune.agents.listener_loop import SimulateConfig, judge_share_against, simulate_listening
from notetune.agents.run import TuneRun
from notetune.pretrained.vocab import NUM_SPECIAL
from notetune.rewards.preferences import parse_preferences
from notetune.scripts.cli import main
from notetune.scripts.report_plots import plot_run_trajectories, trajectory_panels
from tuning import tiny_config


def high_notes(tokens: np.ndarray) -> np.ndarray:
    """A listener who likes melodies that sit high: the mean struck pitch token."""
    struck = tokens >= NUM_SPECIAL
    return np.where(struck, tokens, 0).sum(1) / np.maximum(struck.sum(1), 1)


def test_simulated_listener_loop_raises_the_judges_preference(tmp_path):
    pairs, ceiling = simulate_listening(SimulateConfig(pairs=200, noise=0.5, seed=3), high_notes)
    lines = [pair.to_json() for pair in pairs]
    data = parse_preferences(lines)
    assert len(data) == 200 and data.skipped == {} and 0.5 < ceiling < 1
    config = DPOConfig(
        out=str(tmp_path / "dpo"), epochs=2, learning_rate=1e-3, eval_size=100, judge="test_learned_loop:high_notes"
    )
    record = train_dpo(config, lines)
    assert record["chosen"]["epoch"] > 0
    shares = [row["judge_share"] for row in record["history"]]  # the judge watches every epoch
    assert abs(shares[0] - 0.5) < 0.15 and shares[-1] > shares[0]
    before = judge_share_against(high_notes, "default", "default", size=500)
    after = judge_share_against(high_notes, str(tmp_path / "dpo"), "default", size=500)
    assert abs(before - 0.5) < 0.06 and after > 0.6


def test_a_run_with_a_judge_reports_its_preference_at_every_evaluation(tmp_path, tiny_prior_dir, tiny_corpus_path):
    judge = "notetune.rewards.listener:contour_arch"
    TuneRun(tiny_config(tmp_path / "run", tiny_prior_dir, tiny_corpus_path, judge=judge, steps=4096)).run()
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    shares = [evaluation["stats"]["judge_share"] for evaluation in record["evaluations"]]
    assert len(shares) >= 2 and all(0.0 <= share <= 1.0 for share in shares)
    # Step 0 is the prior against the prior's own compositions of another seed: about even.
    assert abs(shares[0] - 0.5) < 0.1


def test_a_judge_that_cannot_be_imported_is_one_line_before_any_work(
    tmp_path, tiny_prior_dir, tiny_corpus_path, capsys
):
    args = ["tune", "--prior", tiny_prior_dir, "--corpus", tiny_corpus_path, "--out", str(tmp_path / "run")]
    assert main([*args, "--judge", "no_such_module:judge", "--no-progress"]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "cannot import module 'no_such_module'" in error[0]
    assert not (tmp_path / "run").exists()


def test_the_report_draws_the_overoptimisation_curve_when_a_run_has_both_figures(tmp_path):
    evaluations = [
        {"step": step, "stats": {"kl_per_composition": kl, "reward_learned": reward, "judge_share": share}}
        for step, kl, reward, share in [(0, 0.0, 0.0, 0.5), (1000, 2.0, 1.0, 0.7), (2000, 6.0, 2.0, 0.6)]
    ]
    panels = trajectory_panels({"evaluations": evaluations, "chosen": {"step": 1000}})
    assert [panel[0] for panel in panels] == ["kl_per_composition", "reward_learned"]
    assert plot_run_trajectories({"evaluations": evaluations}, tmp_path / "curve.png").stat().st_size > 5000
    without_judge = [{"step": e["step"], "stats": {"reward_learned": 1.0}} for e in evaluations]
    assert [panel[0] for panel in trajectory_panels({"evaluations": without_judge})] == ["kl_per_composition"]
