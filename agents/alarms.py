"""Reward-hacking alarms: signs that tuning farms its rewards instead of writing music."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from notetune.agents.selection import untuned_figure

logger = logging.getLogger(__name__)


def check_alarms(
    stats: dict[str, float],
    baseline: dict[str, float],
    config: Any,
    rollout_stats: dict[str, float],
    weights: dict[str, float],
    corpus_rates: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Every alarm the evaluation ``stats`` trips, as {name, value, threshold, message}.

    Thresholds come from the run config: KL to the prior, drop of mean log p_prior, distinct-4gram share
    relative to the untuned model (written in the form, with a soft form), hold and rest rates relative to
    the corpus (or the untuned model when no corpus rates are given), and the share of one reward in the
    absolute total.
    """
    alarms: list[dict[str, Any]] = []

    def fire(name: str, value: float, threshold: float, message: str) -> None:
        alarms.append({"name": name, "value": float(value), "threshold": float(threshold), "message": message})

    reference = corpus_rates or baseline
    if stats["kl_per_composition"] > config.alarm_kl:
        fire(
            "kl",
            stats["kl_per_composition"],
            config.alarm_kl,
            f"KL to the prior is {stats['kl_per_composition']:.2f} nats per composition "
            f"(alarm above {config.alarm_kl})",
        )
    drop = baseline["log_prior_per_token"] - stats["log_prior_per_token"]
    if drop > config.alarm_log_prior_drop:
        fire(
            "log_prior_drop",
            drop,
            config.alarm_log_prior_drop,
            f"mean log p_prior fell {drop:.2f} nat per token below the untuned model",
        )
    ratio = stats["distinct_4gram"] / max(untuned_figure(baseline, "distinct_4gram"), 1e-9)
    if ratio < config.alarm_distinct_4gram_ratio:
        fire(
            "distinct_4gram",
            ratio,
            config.alarm_distinct_4gram_ratio,
            f"distinct 4-grams are {ratio:.2f}× the untuned model's (melodies are starting to loop)",
        )
    for share, limit_name in (("hold_share", "alarm_hold_ratio"), ("rest_share", "alarm_rest_ratio")):
        limit = getattr(config, limit_name)
        ratio = stats[share] / max(reference[share], 1e-9)
        if ratio < limit:
            what = "held notes" if share == "hold_share" else "rests"
            fire(
                share,
                ratio,
                limit,
                f"{what} are {ratio:.2f}× the {'corpus' if corpus_rates else 'untuned'} "
                f"rate (the model is forgetting how to breathe)",
            )
    weighted = {
        key.split("/")[1]: abs(value)
        for key, value in rollout_stats.items()
        if key.startswith("rewards/")
        and key.endswith("/weighted")
        and not key.startswith("rewards/target_")  # constraint terms: their solver, not a user, sets the weight
    }
    total = sum(weighted.values())
    if total > 0 and len(weighted) > 1:
        name, value = max(weighted.items(), key=lambda item: item[1])
        if value / total > config.alarm_reward_share:
            fire(
                "reward_share",
                value / total,
                config.alarm_reward_share,
                f"reward '{name}' pays {value / total:.0%} of all reward (weight {weights.get(name, 1.0)})",
            )
    return alarms


class AlarmCheck:
    """After each evaluation: check the alarms, log them under ``alarms/``, keep them in ``alarms`` (the run's
    list, saved in checkpoints and run.json), and ask to stop when ``config.stop_on_alarm`` is set."""

    def __init__(
        self,
        config: Any,
        weights: dict[str, float],
        corpus_rates: dict[str, float] | None,
        rollout_stats: Callable[[], dict[str, float]],
        alarms: list[dict[str, Any]],
    ) -> None:
        self.config, self.weights, self.corpus_rates = config, weights, corpus_rates
        self.rollout_stats, self.alarms = rollout_stats, alarms

    def __call__(self, step: int, figures: dict[str, float], baseline: dict[str, float], log: Any) -> str | None:
        fired = check_alarms(figures, baseline, self.config, self.rollout_stats(), self.weights, self.corpus_rates)
        for alarm in fired:
            alarm["step"] = step
            self.alarms.append(alarm)
            logger.warning("reward-hacking alarm at step %d: %s", step, alarm["message"])
            log.record(f"alarms/{alarm['name']}", alarm["value"])
        if fired:
            log.dump(step=step)
            if self.config.stop_on_alarm:
                return f"alarm: {fired[0]['message']} (--stop-on-alarm)"
        return None
