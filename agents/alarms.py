"""Reward-hacking alarms: signs that tuning farms its rewards instead of writing music."""

from __future__ import annotations

from typing import Any


def check_alarms(
    stats: dict[str, float],
    baseline: dict[str, float],
    config: Any,
    rollout_stats: dict[str, float],
    weights: dict[str, float],
    corpus_rates: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Every alarm the evaluation ``stats`` trips, as {name, value, threshold, message}.

    Thresholds come from the run config: KL to the prior, drop of mean log p_prior, distinct-4gram
    share relative to the untuned model, hold and rest rates relative to the corpus (or the untuned
    model when no corpus rates are given), and the share of one reward in the absolute total.
    """
    alarms: list[dict[str, Any]] = []

    def fire(name: str, value: float, threshold: float, message: str) -> None:
        alarms.append({"name": name, "value": float(value), "threshold": float(threshold), "message": message})

    reference = corpus_rates or baseline
    if stats["kl_per_melody"] > config.alarm_kl:
        fire(
            "kl",
            stats["kl_per_melody"],
            config.alarm_kl,
            f"KL to the prior is {stats['kl_per_melody']:.2f} nats per composition (alarm above {config.alarm_kl})",
        )
    drop = baseline["log_prior_per_note"] - stats["log_prior_per_note"]
    if drop > config.alarm_log_prior_drop:
        fire(
            "log_prior_drop",
            drop,
            config.alarm_log_prior_drop,
            f"mean log p_prior fell {drop:.2f} nat per note below the untuned model",
        )
    ratio = stats["distinct_4gram"] / max(baseline["distinct_4gram"], 1e-9)
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
        if key.startswith("rewards/") and key.endswith("/weighted")
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
