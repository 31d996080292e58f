"""Tuning: the policy starts as the prior, every algorithm learns a toy reward, runs are watched,
checkpointed, resumed after SIGKILL, and recorded."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from notetune.agents.checkpoints import (
    TrainingState,
    list_checkpoints,
    load_latest_checkpoint,
    save_training_checkpoint,
)
from notetune.agents.config import TuneConfig, with_length_defaults
from notetune.agents.evaluation import evaluate_policy
from notetune.agents.kl import KLController
from notetune.agents.policy import MelodyPolicy
from notetune.agents.run import TuneError, TuneRun, load_run
from notetune.agents.selection import CollapseRule, SelectionRule, Watcher
from notetune.envs import MelodyVecEnv
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.sampling import sample_tokens
from notetune.rewards import RewardSet, UnknownRewardError
from notetune.rewards.evaluation import evaluate_tokens
from notetune.rewards.statistics import table1_statistics
from tuning import tiny_config

TOY_REWARD = '''
def play_d(tokens, t):
    """+1 for striking any D (pitch class 2)."""
    token = int(tokens[t])
    return float(token >= 2 and (token - 2 + 48) % 12 == 2)
'''


def make_rule(**overrides) -> SelectionRule:
    """The selection rule of a TuneConfig with these fields changed (TuneConfig owns the defaults)."""
    return SelectionRule.from_config(with_length_defaults(TuneConfig(**overrides), 32))


def make_watcher(rule: SelectionRule | None = None, **overrides) -> Watcher:
    config = TuneConfig(**{k: v for k, v in overrides.items() if k in ("patience", "stop_on_collapse")})
    return Watcher(rule or make_rule(), CollapseRule.from_config(config), config.patience, config.stop_on_collapse)


@pytest.fixture
def toy_reward_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(TOY_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_rewards:play_d"


def d_share(model, num=2000):
    tokens = sample_tokens(model, num, 8, seed=99)
    return float(np.mean((tokens >= 2) & ((tokens - 2 + 48) % 12 == 2)))


def config(tmp_path, prior_dir, corpus_path, **overrides):
    return tiny_config(tmp_path / "run", prior_dir, corpus_path, **overrides)


def test_policy_equals_the_prior_before_the_first_update(tiny_prior):
    env = MelodyVecEnv(tiny_prior, RewardSet.from_spec("notetune"), num_envs=8)
    policy = MelodyPolicy(env.observation_space, env.action_space, lambda _: 1e-4, prior=tiny_prior)
    tokens = torch.randint(0, 38, (16, 32))
    log_probs, _, _ = policy.evaluate_sequences(tokens)
    kl_terms = log_probs - tiny_prior.sequence_log_probs(tokens)
    assert kl_terms.abs().max() < 1e-6
    assert all(p.requires_grad for p in policy.actor.parameters())
    assert not any(p.requires_grad for p in tiny_prior.parameters())


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "psi", "g"])
def test_every_algorithm_learns_a_toy_reward_given_by_dotted_path(
    algo, tmp_path, tiny_prior, tiny_prior_dir, tiny_corpus_path, toy_reward_module
):
    # Loose selection bounds: this test is about learning, not about which checkpoint is kept.
    overrides = {
        "reward": [f"{toy_reward_module}=3"],
        "min_distinct_melodies": 0.0,
        "min_distinct_4gram_ratio": 0.0,
        "min_hold_ratio": 0.0,
        "min_rest_ratio": 0.0,
        "max_log_prior_drop": 100.0,
    }
    if algo == "a2c":
        overrides.update(learning_rate=6e-3)  # one gradient step per rollout
    if algo in ("dqn", "psi", "g"):
        overrides.update(
            num_envs=8,
            steps=6000,
            learning_rate=2e-3,
            learning_starts=200,
            train_freq=1,
            batch_size=32,
            gamma=0.5,
            tau=0.05,
            exploration_fraction=0.3,
            eval_every=3000,
            checkpoint_every=3000,
        )
    run = TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, algo=algo, **overrides))
    record = run.run()
    tuned, _ = load_checkpoint(tmp_path / "run" / "model")
    before, after = d_share(tiny_prior), d_share(tuned)
    assert after > before + 0.05, (algo, before, after)
    assert record["steps"] >= run.config.steps
    # The reward term was logged under its own name.
    events = list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents*"))
    assert events and b"play_d" in events[0].read_bytes()


def test_unknown_reward_fails_before_any_training(tmp_path, tiny_prior_dir, tiny_corpus_path):
    with pytest.raises(UnknownRewardError, match="did you mean 'tonic'"):
        TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, reward=["tonik"]))
    assert not (tmp_path / "run").exists()


def test_existing_run_directory_is_not_overwritten(tmp_path, tiny_prior_dir, tiny_corpus_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(TuneError, match="--resume"):
        TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path))


def test_adaptive_kl_moves_beta_toward_the_target():
    controller = KLController(beta=1.0, target=4.0, horizon=100)
    controller.update(kl_per_composition=8.0, melodies=100)
    assert controller.beta == pytest.approx(1.2)
    controller.update(kl_per_composition=1.0, melodies=50)
    assert controller.beta == pytest.approx(1.2 * 0.9)
    fixed = KLController(beta=0.3, target=None, horizon=512)
    fixed.update(100.0, 1000)
    assert fixed.beta == 0.3


def test_beta_does_not_wind_down_while_the_kl_is_still_rising():
    controller = KLController(beta=15.0, target=10.0, horizon=512)
    for kl in np.linspace(0.5, 9.5, 50):  # the policy leaves the prior more slowly than β could fall
        controller.update(kl, melodies=256)
    assert controller.beta == 15.0
    controller.update(9.0, melodies=256)  # below the target and no longer rising: now β falls
    assert controller.beta == pytest.approx(15.0 * (1 - 0.1 * 0.5))
    restored = KLController(beta=0.0, target=None, horizon=1.0)
    restored.load_state_dict(controller.state_dict())
    assert restored == controller


def test_collapse_detector_fires_on_a_collapsed_batch(tiny_prior):
    diverse = sample_tokens(tiny_prior, 512, 32, seed=0)
    collapsed = np.tile(diverse[:1], (512, 1))

    def stats(tokens):
        s = table1_statistics(tokens)
        s.update(
            distinct_4gram=evaluate_tokens(tokens, resamples=0).figures()["distinct_4gram"],
            kl_per_composition=1.0,
            log_prior_per_token=-1.0,
            music_reward=100.0,
        )
        return s

    watcher = make_watcher(patience=0)
    assert watcher.observe(0, stats(diverse))["stop"] is None
    record = watcher.observe(1000, stats(collapsed))
    assert record["stop"].startswith("collapse") and "distinct" in record["stop"]
    assert not record["eligible"] and watcher.best["step"] == 0
    # With stop_on_collapse off (value-based runs that recover from early collapses) it is logged, not fatal.
    patient = make_watcher(patience=0, stop_on_collapse=False)
    patient.observe(0, stats(diverse))
    record = patient.observe(1000, stats(collapsed))
    assert record["collapse"] and record["stop"] is None


def evaluation(**overrides):
    stats = dict.fromkeys(table1_statistics(np.zeros((1, 8), dtype=np.int64)), 0.0)
    stats.update(
        distinct_melodies=1.0,
        distinct_4gram=0.3,
        hold_share=0.6,
        rest_share=0.01,
        kl_per_composition=1.0,
        log_prior_per_token=-1.0,
        music_reward=0.0,
    )
    stats.update(overrides)
    return stats


def test_statistic_targets_decide_which_checkpoint_is_chosen():
    rule = make_rule(max_kl=20.0, min_stats={"starts_with_tonic": 0.288}, max_stats={"not_in_key": 0.01})
    watcher = make_watcher(rule, patience=2)
    # The prior is within bounds but misses a target: chosen until something better comes.
    first = watcher.observe(0, evaluation(starts_with_tonic=0.14))
    assert first["improved"] and first["missed_targets"] == ["starts_with_tonic 0.14 < 0.288"]
    assert watcher.observe(1, evaluation(starts_with_tonic=0.2, music_reward=50.0))["improved"]  # same misses
    # Every target met beats more reward with a target missed.
    assert watcher.observe(2, evaluation(starts_with_tonic=0.3, music_reward=10.0))["improved"]
    out_of_key = watcher.observe(3, evaluation(starts_with_tonic=0.4, not_in_key=0.02, music_reward=90.0))
    assert out_of_key["missed_targets"] == ["not_in_key 0.02 > 0.01"] and not out_of_key["improved"]
    # Out of bounds (KL) never counts, whatever it scores.
    assert not watcher.observe(4, evaluation(starts_with_tonic=0.5, kl_per_composition=30.0, music_reward=99.0))[
        "eligible"
    ]
    assert watcher.best["step"] == 2 and watcher.stale == 2
    assert watcher.history[-1]["stop"].startswith("no better")
    assert rule.describe_targets() == "starts_with_tonic ≥ 0.288, not_in_key ≤ 0.01"


def test_patience_starts_at_the_first_tuned_checkpoint_chosen_not_at_the_untuned_model():
    watcher = make_watcher(make_rule(max_kl=20.0, min_stats={"starts_with_tonic": 0.288}), patience=2)
    assert watcher.observe(0, evaluation(starts_with_tonic=0.3))["improved"]  # the untuned model meets it
    for step in range(1, 6):  # tuned checkpoints that miss the target (say its multiplier is still rising)
        record = watcher.observe(step, evaluation(starts_with_tonic=0.2, music_reward=50.0))
        assert not record["improved"] and record["stop"] is None
    assert watcher.observe(6, evaluation(starts_with_tonic=0.4, music_reward=60.0))["improved"]
    watcher.observe(7, evaluation(starts_with_tonic=0.2))
    assert watcher.observe(8, evaluation(starts_with_tonic=0.2))["stop"].startswith("no better")


def test_unknown_target_statistic_is_refused_before_any_training(tmp_path, tiny_prior_dir, tiny_corpus_path):
    with pytest.raises(TuneError, match="did you mean 'leaps_resolved'"):
        TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, min_stats={"leaps_resolve": 0.9}))
    assert not (tmp_path / "run").exists()
    # Each reward term's mean is a statistic too.
    TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, reward=["rl_tuner"], min_stats={"reward_tonic": 0}))


def test_evaluation_reports_kl_zero_for_the_prior_itself(tiny_prior):
    stats = evaluate_policy(
        tiny_prior, tiny_prior, num=256, length=32, seed=0, rewards=RewardSet.from_spec("notetune")
    ).figures()
    assert abs(stats["kl_per_composition"]) < 1e-4
    assert 0 < stats["distinct_4gram"] <= 1 and stats["log_prior_per_token"] < 0


def test_truncated_checkpoint_is_detected_and_the_previous_one_used(tmp_path, tiny_prior):
    policy = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(policy.parameters())
    policy(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    save_training_checkpoint(tmp_path, 100, policy, optimizer, TrainingState({"note": "first"}, {}, 1.0, [], []))
    with torch.no_grad():
        policy.weight.add_(1.0)
    save_training_checkpoint(tmp_path, 200, policy, optimizer, TrainingState({"note": "second"}, {}, 2.0, [], []))
    newest = list_checkpoints(tmp_path)[-1] / "policy.safetensors"
    newest.write_bytes(newest.read_bytes()[:-10])
    fresh = torch.nn.Linear(3, 2)
    state = load_latest_checkpoint(tmp_path, fresh, torch.optim.Adam(fresh.parameters()))
    assert state.algorithm["note"] == "first" and state.path.endswith("step_000000000100")


def test_run_record_says_what_was_chosen_and_why(tmp_path, tiny_prior_dir, tiny_corpus_path):
    record = TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, steps=4096)).run()
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["config"]["algo"] == "ppo" and saved["seed"] == 0
    assert len(saved["prior"]["sha256"]) == 64 and len(saved["corpus"]["sha256"]) == 64
    assert saved["versions"]["torch"] and saved["chosen"]["why"]
    assert saved["evaluations"][0]["step"] == 0 and record["untuned"]["kl_per_composition"] == pytest.approx(
        0, abs=1e-4
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 4096


def test_a_run_that_meets_no_target_exports_its_best_model_within_bounds_and_says_so(
    tmp_path, tiny_prior_dir, tiny_corpus_path
):
    record = TuneRun(
        config(tmp_path, tiny_prior_dir, tiny_corpus_path, steps=4096, min_stats={"distinct_melodies": 1.5})
    ).run()
    assert record["chosen"]["why"].startswith("no evaluation within bounds met every target")
    assert "distinct_melodies" in record["chosen"]["why"] and record["chosen"]["step"] is not None
    assert all(e["missed_targets"] for e in record["evaluations"])
    exported = load_checkpoint(tmp_path / "run" / "model")[1]
    assert exported["tuned"]["step"] == record["chosen"]["step"]


def test_a_run_killed_with_sigkill_resumes_and_finishes(tmp_path, tiny_prior_dir, tiny_corpus_path):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import sys, torch
        from notetune.scripts.cli import main
        sys.exit(main(["tune", "--prior", {tiny_prior_dir!r}, "--corpus", {tiny_corpus_path!r}, "--out", {str(out)!r},
                       "--length", "8", "--num-envs", "64", "--steps", "40960", "--max-minutes", "0",
                       "--eval-every", "8192", "--eval-size", "128", "--confirm-size", "128",
                       "--checkpoint-every", "2048", "--threads", "1", "--no-progress"]))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list_checkpoints(out / "checkpoints")) < 2:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list_checkpoints(out / "checkpoints"), "no checkpoint was written before the kill"
    run = load_run(out)
    assert 0 < run.algorithm.num_timesteps < 40960
    record = run.run()
    assert record["steps"] == 40960 and record["resumed_from"]
    model, _ = load_checkpoint(out / "model")
    assert sample_tokens(model, 4, 8).shape == (4, 8)


@pytest.mark.parametrize("algo", ["dqn", "psi", "g"])
def test_q_learners_start_from_the_prior(algo, tiny_prior):
    from notetune.agents.dqn import build_q_learner

    cfg = TuneConfig(algo=algo, num_envs=2, length=8, learning_starts=10)
    learner = build_q_learner(cfg, tiny_prior, RewardSet.from_spec("notetune", length=8))
    exported = learner.policy.export_actor()
    tokens = torch.randint(0, 38, (16, 8))
    expected = tiny_prior.sequence_log_probs(tokens)
    # Boltzmann over Q = the prior for dqn/psi (Q = prior logits); for g, Q = 0 and π ∝ exp(Q)·p_prior = prior.
    assert torch.allclose(exported.sequence_log_probs(tokens), expected, atol=1e-5)


def test_a_run_that_never_stays_within_bounds_exports_its_final_policy_and_says_so(
    tmp_path, tiny_prior_dir, tiny_corpus_path
):
    record = TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, steps=4096, min_distinct_melodies=1.5)).run()
    assert record["chosen"]["why"].startswith("no evaluation met every bound; exported the final policy")
    assert record["chosen"]["step"] == record["evaluations"][-1]["step"] == record["steps"]
    assert record["final_metrics"] == record["evaluations"][-1]["stats"]


def test_a_resumed_q_learner_keeps_its_replay_buffer(tmp_path, tiny_prior_dir, tiny_corpus_path):
    overrides = dict(algo="dqn", num_envs=4, steps=1200, learning_starts=100, checkpoint_every=400, eval_every=600)
    run = TuneRun(config(tmp_path, tiny_prior_dir, tiny_corpus_path, buffer_size=1000, **overrides))
    run.run()
    buffer = run.algorithm.replay_buffer
    assert buffer.pos > 0
    resumed = load_run(tmp_path / "run")
    restored = resumed.algorithm.replay_buffer
    assert (restored.pos, restored.full) == (buffer.pos, buffer.full)
    for name in ("observations", "next_observations", "actions", "rewards", "dones"):
        assert np.array_equal(getattr(restored, name), getattr(buffer, name)), name
    assert (
        tmp_path / "run" / "checkpoints" / f"step_{run.algorithm.num_timesteps:012d}" / "buffers.safetensors"
    ).is_file()


def test_a_would_be_best_evaluation_must_be_confirmed_on_a_fresh_batch():
    watcher = make_watcher(make_rule(max_kl=20.0, min_stats={"leaps_resolved": 0.911}), patience=0)
    # The untuned baseline of the relative bounds is measured on the (larger) confirmation batch.
    watcher.observe(0, evaluation(leaps_resolved=0.87), confirm=lambda: evaluation(leaps_resolved=0.88, hold_share=0.7))
    assert watcher.baseline["hold_share"] == 0.7 and watcher.best["stats"]["leaps_resolved"] == 0.88
    # A lucky batch nominates the checkpoint; the fresh batch shows it misses the target by more than the best.
    lucky = watcher.observe(
        1, evaluation(leaps_resolved=0.915, music_reward=50.0), confirm=lambda: evaluation(leaps_resolved=0.875)
    )
    assert not lucky["improved"] and lucky["confirmation"]["missed_targets"] == ["leaps_resolved 0.875 < 0.911"]
    assert watcher.best["step"] == 0
    # Confirmed: the best carries the fresh batch's figures, not the nominating batch's.
    good = watcher.observe(
        2,
        evaluation(leaps_resolved=0.93, music_reward=60.0),
        confirm=lambda: evaluation(leaps_resolved=0.92, music_reward=55.0),
    )
    assert good["improved"] and watcher.best["stats"]["leaps_resolved"] == 0.92
    assert watcher.best["stats"]["music_reward"] == 55.0 and watcher.best["missed"] == []
    # Confirmation is not even asked for an evaluation that does not look better.
    watcher.observe(3, evaluation(leaps_resolved=0.95, music_reward=10.0), confirm=lambda: pytest.fail("called"))
