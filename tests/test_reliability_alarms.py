"""Reward-hacking alarms: each one fires on the sign it watches for, and --stop-on-alarm ends a run with
the reason in run.json and TensorBoard."""

import json

import pytest
from notetune.agents.alarms import check_alarms
from notetune.agents.config import TuneConfig, with_length_defaults
from notetune.scripts.cli import main

UNTUNED = {
    "kl_per_composition": 0.0,
    "log_prior_per_token": -1.2,
    "distinct_4gram": 0.5,
    "hold_share": 0.55,
    "rest_share": 0.05,
}
BALANCED_ROLLOUT = {"rewards/key/weighted": -1.0, "rewards/tonic/weighted": 1.5, "rewards/motif/weighted": 1.0}


@pytest.mark.parametrize(
    ("change", "rollout", "name", "value", "words"),
    [
        ({"kl_per_composition": 9.5}, BALANCED_ROLLOUT, "kl", 9.5, "KL to the prior is 9.50 nats"),
        ({"log_prior_per_token": -1.9}, BALANCED_ROLLOUT, "log_prior_drop", 0.7, "fell 0.70 nat per token"),
        ({"distinct_4gram": 0.3}, BALANCED_ROLLOUT, "distinct_4gram", 0.6, "0.60× the untuned model's"),
        ({"hold_share": 0.22}, BALANCED_ROLLOUT, "hold_share", 0.4, "held notes are 0.40× the untuned rate"),
        ({"rest_share": 0.01}, BALANCED_ROLLOUT, "rest_share", 0.2, "rests are 0.20× the untuned rate"),
        (
            {},
            {"rewards/key/weighted": -1.0, "rewards/tonic/weighted": 9.0},
            "reward_share",
            0.9,
            "reward 'tonic' pays 90% of all reward (weight 3.0)",
        ),
    ],
)
def test_each_alarm_fires_on_the_sign_it_watches_for(change, rollout, name, value, words):
    config = with_length_defaults(TuneConfig(), 32)
    weights = {"key": 1.0, "tonic": 3.0, "motif": 1.0}
    assert check_alarms(dict(UNTUNED), UNTUNED, config, BALANCED_ROLLOUT, weights) == []
    fired = check_alarms({**UNTUNED, **change}, UNTUNED, config, rollout, weights)
    assert [alarm["name"] for alarm in fired] == [name]
    assert fired[0]["value"] == pytest.approx(value) and words in fired[0]["message"]
    thresholds = {
        "kl": config.alarm_kl,
        "log_prior_drop": config.alarm_log_prior_drop,
        "distinct_4gram": config.alarm_distinct_4gram_ratio,
        "hold_share": config.alarm_hold_ratio,
        "rest_share": config.alarm_rest_ratio,
        "reward_share": config.alarm_reward_share,
    }
    assert fired[0]["threshold"] == thresholds[name]


def test_hold_and_rest_alarms_compare_with_the_corpus_when_given():
    corpus = {"hold_share": 0.6, "rest_share": 0.045}
    config = with_length_defaults(TuneConfig(), 32)
    fired = check_alarms({**UNTUNED, "hold_share": 0.3}, UNTUNED, config, {}, {}, corpus)
    assert [alarm["name"] for alarm in fired] == ["hold_share"]
    assert "0.50× the corpus rate" in fired[0]["message"]


def test_thresholds_come_from_the_config():
    relaxed = TuneConfig(alarm_kl=20.0, alarm_reward_share=0.95)
    stats = {**UNTUNED, "kl_per_composition": 9.5}
    assert check_alarms(stats, UNTUNED, relaxed, {"rewards/a/weighted": 9.0, "rewards/b/weighted": 1.0}, {}) == []


def test_stop_on_alarm_ends_a_tiny_run_and_run_json_says_why(tmp_path, tiny_prior_dir, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "tune",
            "--prior",
            tiny_prior_dir,
            "--corpus",
            "none",
            "--out",
            str(out),
            "--length",
            "8",
            "--num-envs",
            "32",
            "--steps",
            "8192",
            "--max-minutes",
            "0",
            "--eval-every",
            "512",
            "--eval-size",
            "64",
            "--confirm-size",
            "128",
            "--checkpoint-every",
            "4096",
            "--threads",
            "1",
            "--no-progress",
            "--reward",
            "key=1,tonic=1000",
            "--stop-on-alarm",
        ]
    )
    assert code == 0
    assert "reward-hacking alarm(s); see run.json" in capsys.readouterr().out
    record = json.loads((out / "run.json").read_text())
    assert record["stop_reason"].startswith("alarm: reward 'tonic' pays") and "--stop-on-alarm" in record["stop_reason"]
    assert record["steps"] < 8192
    alarm = record["alarms"][0]
    assert alarm["name"] == "reward_share" and alarm["value"] > 0.6 and alarm["step"] <= record["steps"]
    events = list((out / "tensorboard").glob("events.out.tfevents*"))
    assert events and b"alarms/reward_share" in events[0].read_bytes()
