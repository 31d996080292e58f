"""Strict form in tuning: returning phrases copied through the masks of the environment's prior, the policy's
rollout and its replay, evaluation sampling and the prior's log p — and KL = 0 before the first update."""

import json

import numpy as np
import pytest
import torch
from notetune.agents.config import TuneConfig
from notetune.agents.run import TuneError, TuneRun
from notetune.envs import MelodyVecEnv
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.form import Form, FormError, form_violations
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.rewards import RewardSet
from notetune.rewards.structure import form_compliance_counts
from notetune.scripts.cli import main
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure


class Continue(BaseCallback):
    def _on_step(self) -> bool:
        return True


def strict_config(tmp_path, prior_dir, corpus, **overrides) -> TuneConfig:
    base = dict(
        prior=prior_dir,
        corpus=corpus,
        out=str(tmp_path / "run"),
        length=64,
        form="AABA",
        form_strict=True,
        num_envs=32,
        steps=4096,
        eval_every=2048,
        eval_size=64,
        confirm_size=0,
        eval_resamples=0,
        checkpoint_every=1_000_000,
        threads=1,
        progress=False,
    )
    return TuneConfig(**{**base, **overrides})


def test_the_environment_copies_returning_phrases_and_renormalises_the_prior_over_them(tiny_prior):
    layout = Form.parse("AABA").layout(32)
    env = MelodyVecEnv(tiny_prior, RewardSet.from_spec("notetune"), num_envs=3, form=layout)
    env.reset()
    phrase = np.array([[14, 1, 16, 1, 18, 1, 1, 0], [2, 3, 4, 5, 6, 7, 8, 9], [20, 1, 1, 1, 0, 1, 1, 1]])
    for t in range(8):
        assert env.action_masks().all()  # the first phrase is free
        env.step(phrase[:, t])
    mask = env.action_masks()
    assert mask.sum(axis=1).tolist() == [1, 1, 1] and mask[np.arange(3), phrase[:, 0]].all()
    assert np.allclose(env.prior_log_probs[np.arange(3), phrase[:, 0]], 0.0)  # the copied token: log p = 0
    assert np.isneginf(env.prior_log_probs[~mask]).all()
    with pytest.raises(ValueError, match="breaks the strict form AABA"):
        env.step(np.array([14, 3, 1]))


def test_sampling_and_the_priors_log_p_under_a_strict_form_agree(tiny_prior):
    layout = Form.parse("AA'BA").layout(64)
    tokens, sampled = sample_tokens(tiny_prior, 50, 64, seed=4, return_log_probs=True, form=layout)
    assert (form_violations(tokens, layout) == 0).all()
    assert np.allclose(token_log_probs(tiny_prior, tokens, form=layout), sampled, atol=1e-5)
    with pytest.raises(FormError, match="laid out on 64 steps, but the melodies have 32"):
        sample_tokens(tiny_prior, 2, 32, form=layout)


def test_a_tiny_strict_run_obeys_the_form_in_every_sample_with_kl_zero_at_step_0(
    tmp_path, tiny_prior_dir, tiny_corpus_path
):
    run = TuneRun(strict_config(tmp_path, tiny_prior_dir, tiny_corpus_path))
    assert run.reward_spec == ["form"] and "form_return" in run.rewards.weights
    layout = run.piece.strict_layout
    algorithm = run.algorithm
    algorithm.set_logger(configure(None, []))
    callback = Continue()
    callback.init_callback(algorithm)
    algorithm.env.reset()
    algorithm.collect_rollouts(algorithm.env, callback, algorithm.rollout_buffer, 64)
    rollout = algorithm.rollout
    assert (rollout.log_probs - rollout.log_prior).abs().max() < 1e-5  # KL = 0 before any update
    assert (form_violations(rollout.tokens.numpy(), layout) == 0).all()
    copied = torch.from_numpy(layout.copy_source >= 0)
    assert (rollout.log_probs[:, copied] == 0).all() and (rollout.log_prior[:, copied] == 0).all()
    # The update replays the same tokens under the same masks: the same log π as the rollout.
    log_probs, entropy, _ = algorithm.policy.evaluate_sequences(rollout.tokens)
    assert torch.allclose(log_probs, rollout.log_probs, atol=1e-5) and torch.isfinite(entropy).all()
    # SB3's predict() masks by the observation's own tokens: at step 16 (the second A) it copies step 0.
    observation = np.full((1, 65), 38)
    observation[0, 0] = 16
    observation[0, 1:17] = rollout.tokens[0, :16].numpy()
    action, _ = algorithm.policy.predict(observation, deterministic=False)
    assert int(action[0]) == int(rollout.tokens[0, 0])

    record = run.run()
    assert record["piece"] == {"length": 64, "meter": "4/4", "form": "AABA", "phrase_bars": 0, "form_strict": True}
    exported, _ = load_checkpoint(record["chosen"]["path"])
    samples = sample_tokens(exported, 200, 64, seed=1, form=layout)
    assert (form_violations(samples, layout) == 0).all()
    assert form_compliance_counts(samples, layout)["returns_agree"][0].mean() == 1.0
    assert record["final_metrics"]["returns_agree"] == 1.0 and record["final_metrics"]["kl_per_composition"] >= 0
    # `evaluate` judges the tuned model by its own rewards, the form ones included, on the form it is given.
    figures = tmp_path / "evaluation.json"
    argv = ["evaluate", "--model", str(tmp_path / "run"), "--num", "64", "--length", "64", "--form", "AABA"]
    argv += ["--form-strict", "--prior", tiny_prior_dir, "--corpus", tiny_corpus_path, "--json", str(figures)]
    assert main([*argv, "--resamples", "10"]) == 0
    metrics = json.loads(figures.read_text())["metrics"]
    assert metrics["reward_form_return"]["value"] > 0 and metrics["returns_agree"]["value"] == 1.0


def test_strict_form_is_refused_where_it_cannot_apply(tmp_path, tiny_prior_dir, tiny_corpus_path):
    with pytest.raises(TuneError, match="need --algo ppo, a2c, grpo or rloo"):
        TuneRun(strict_config(tmp_path, tiny_prior_dir, tiny_corpus_path, algo="dqn"))
    with pytest.raises(FormError, match="--form-strict copies the returning phrases of a form; give one too"):
        TuneRun(strict_config(tmp_path, tiny_prior_dir, tiny_corpus_path, form=""))
    with pytest.raises(FormError, match="does not divide into the 3 equal phrases"):
        TuneRun(strict_config(tmp_path, tiny_prior_dir, tiny_corpus_path, form="ABA"))
    assert not (tmp_path / "run").exists()
