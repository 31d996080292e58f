"""The named reward sets: ``rl_tuner`` (faithful) and ``notetune`` (the corrected default)."""

from __future__ import annotations

from .notetune_rules import NOTETUNE_WEIGHTS
from .registry import register_reward_set
from .rl_tuner import RL_TUNER_RULES

RL_TUNER_C = 0.5
"""RL Tuner's c: the music-theory sum is paid with weight 1/c = 2 (the agent adds the prior's log p)."""

RL_TUNER_WEIGHTS = dict.fromkeys(RL_TUNER_RULES, 1.0 / RL_TUNER_C)

DEFAULT_REWARD_SET = "notetune"

register_reward_set("rl_tuner", RL_TUNER_WEIGHTS)
register_reward_set("notetune", NOTETUNE_WEIGHTS)
