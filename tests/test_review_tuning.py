"""Issue 12, section 7, tuning side: surprise_band runs, evaluations leave reward state alone, alarms' corpus
rates follow the run's length."""

import json

import numpy as np
import pytest
from notetune.agents.config import TuneConfig
from notetune.agents.run import TuneRun, corpus_rates
from notetune.pretrained.corpus import load_corpus
from notetune.pretrained.vocab import HOLD, REST
from test_agents import config


def tiny_config(tmp_path, prior_dir, corpus_path, **overrides) -> TuneConfig:
    """test_agents' tiny run, shorter still: these tests are about what is recorded, not about learning."""
    short = dict(num_envs=16, steps=256, eval_every=128, eval_size=64, confirm_size=64, checkpoint_every=256)
    return config(tmp_path, prior_dir, corpus_path, **{**short, "eval_resamples": 0, **overrides})


def test_a_tune_run_with_surprise_band_starts_and_records_the_term(tmp_path, tiny_prior_dir, tiny_corpus_path):
    record = TuneRun(
        tiny_config(tmp_path, tiny_prior_dir, tiny_corpus_path, reward=["notetune", "surprise_band"])
    ).run()
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["evaluations"] and all("reward_surprise_band" in e["stats"] for e in saved["evaluations"])
    # The untrained tiny prior is near uniform over 38 tokens (surprisal about 3.6 nats, above the band's 3).
    assert 0 <= record["untuned"]["reward_surprise_band"] < 1


def test_two_evaluations_of_the_same_policy_give_the_same_count_novelty(tmp_path, tiny_prior_dir, tiny_corpus_path):
    run = TuneRun(tiny_config(tmp_path, tiny_prior_dir, tiny_corpus_path, reward=["notetune", "count_novelty"]))
    first = run.evaluate(256, seed_offset=1)
    second = run.evaluate(256, seed_offset=1)
    assert first["reward_count_novelty"] > 0
    assert second["reward_count_novelty"] == first["reward_count_novelty"]
    assert second["music_reward"] == first["music_reward"]
    # ...and the set that trains the policy has counted nothing.
    (count_novelty,) = [fn for name, fn in run.rewards._rewards if name == "count_novelty"]
    assert count_novelty.counts.sum() == 0


@pytest.mark.parametrize("length", [8, 64])
def test_corpus_rates_use_the_runs_length(tiny_corpus_path, length):
    corpus = load_corpus(tiny_corpus_path)
    rates = corpus_rates(corpus, length)
    windows = corpus.windows(length, from_start_only=True)
    assert windows.shape[1] == length
    assert rates == {"hold_share": float((windows == HOLD).mean()), "rest_share": float((windows == REST).mean())}
    # The openings of 8 and 64 steps differ in their hold share (the tests' corpus starts each melody on a note).
    other = corpus_rates(corpus, 72 - length)
    assert not np.isclose(rates["hold_share"], other["hold_share"])


def test_a_tune_run_reads_its_alarm_rates_at_its_own_length(tmp_path, tiny_prior_dir, tiny_corpus_path):
    run = TuneRun(tiny_config(tmp_path, tiny_prior_dir, tiny_corpus_path, length=16))
    assert run.corpus_rates == corpus_rates(load_corpus(tiny_corpus_path), 16)
    assert run.corpus_rates != corpus_rates(load_corpus(tiny_corpus_path), 32)
