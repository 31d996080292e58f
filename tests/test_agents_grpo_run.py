"""`notetune tune --algo grpo | rloo`: the run wiring (TuneConfig fields, build_algorithm) for the new algorithms."""

import numpy as np
import pytest
from notetune.agents.grpo import MelodyGRPO
from notetune.agents.run import TuneError, TuneRun
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.sampling import sample_tokens
from tuning import tiny_config

TOY_REWARD = '''
def play_d(tokens, t):
    """+1 for striking any D (pitch class 2)."""
    token = int(tokens[t])
    return float(token >= 2 and (token - 2 + 48) % 12 == 2)
'''


def d_share(model):
    tokens = sample_tokens(model, 2000, 8, seed=99)
    return float(np.mean((tokens >= 2) & ((tokens - 2 + 48) % 12 == 2)))


def tune_config(tmp_path, prior_dir, corpus_path, **overrides):
    """The tiny run with every selection bound open (these tests judge learning, not selection)."""
    open_bounds = dict(
        min_distinct_melodies=0.0,
        min_distinct_4gram_ratio=0.0,
        min_hold_ratio=0.0,
        min_rest_ratio=0.0,
        max_log_prior_drop=100.0,
    )
    return tiny_config(tmp_path / "run", prior_dir, corpus_path, **{**open_bounds, **overrides})


@pytest.mark.parametrize(("algo", "kl_estimator"), [("grpo", "penalty"), ("rloo", "k3")])
def test_tune_with_grpo_or_rloo_learns_a_toy_reward(
    algo, kl_estimator, tmp_path, tiny_prior, tiny_prior_dir, tiny_corpus_path, monkeypatch
):
    (tmp_path / "my_rewards.py").write_text(TOY_REWARD)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tune_config(
        tmp_path, tiny_prior_dir, tiny_corpus_path, algo=algo, kl_estimator=kl_estimator, reward=["my_rewards:play_d=3"]
    )
    run = TuneRun(config)
    assert isinstance(run.algorithm, MelodyGRPO) and run.algorithm.advantage == algo
    record = run.run()
    tuned, _ = load_checkpoint(tmp_path / "run" / "model")
    assert d_share(tuned) > d_share(tiny_prior) + 0.3
    assert record["steps"] >= 8192 and record["config"]["algo"] == algo


def test_groups_that_do_not_divide_num_envs_are_refused_before_any_work(tmp_path, tiny_prior_dir, tiny_corpus_path):
    config = tune_config(tmp_path, tiny_prior_dir, tiny_corpus_path, algo="grpo", num_envs=60, group_size=8)
    with pytest.raises(TuneError, match=r"multiple of group_size \(8\); e.g. --num-envs 56"):
        TuneRun(config)
    assert not (tmp_path / "run").exists()


def test_grpo_accepts_a_primer(tmp_path, tiny_prior_dir, tiny_corpus_path):
    run = TuneRun(tune_config(tmp_path, tiny_prior_dir, tiny_corpus_path, algo="rloo", primer="60 _ 62 _"))
    assert run.algorithm.policy.primer_tokens is not None and run.algorithm.env.primer is not None
